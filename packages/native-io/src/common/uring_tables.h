// Names of io_uring capabilities, in the stable order the probe reports them.
//
// Pure data with the kernel's ABI numbers spelled out, no Linux header: the
// probe on every platform reports the same shape (all false where there is no
// io_uring), and linux/probe_linux.cc static_asserts these numbers against
// <linux/io_uring.h> where the header has them. Keep in sync with
// lib/native.ts (URING_FEATURE_NAMES, URING_OP_NAMES, URING_SETUP_FLAG_NAMES);
// test/native checks that they match.
#ifndef FASTPORT_COMMON_URING_TABLES_H_
#define FASTPORT_COMMON_URING_TABLES_H_

#include <cstddef>
#include <cstdint>

namespace fastport {
namespace uring_tables {

struct Bit {
  const char* name;
  uint32_t bit;
};

// io_uring_params.features (IORING_FEAT_*), with the kernel that added each.
inline constexpr Bit kFeatures[] = {
    {"singleMmap", 1u << 0},       // 5.4
    {"nodrop", 1u << 1},           // 5.5
    {"submitStable", 1u << 2},     // 5.5
    {"rwCurPos", 1u << 3},         // 5.6
    {"curPersonality", 1u << 4},   // 5.6
    {"fastPoll", 1u << 5},         // 5.7
    {"poll32Bits", 1u << 6},       // 5.9
    {"sqpollNonfixed", 1u << 7},   // 5.11
    {"extArg", 1u << 8},           // 5.11
    {"nativeWorkers", 1u << 9},    // 5.12
    {"rsrcTags", 1u << 10},        // 5.13
    {"cqeSkip", 1u << 11},         // 5.17
    {"linkedFile", 1u << 12},      // 5.17
    {"regRegRing", 1u << 13},      // 6.3
    {"recvsendBundle", 1u << 14},  // 6.10
    {"minTimeout", 1u << 15},      // 6.12
    {"rwAttr", 1u << 16},          // 6.14
    {"noIowait", 1u << 17},        // 6.15
};
inline constexpr size_t kFeatureCount = sizeof(kFeatures) / sizeof(kFeatures[0]);

// SQE opcodes (enum io_uring_op): index = opcode number.
inline constexpr const char* kOps[] = {
    "nop",         "readv",          "writev",        "fsync",         "readFixed",
    "writeFixed",  "pollAdd",        "pollRemove",    "syncFileRange", "sendmsg",
    "recvmsg",     "timeout",        "timeoutRemove", "accept",        "asyncCancel",
    "linkTimeout", "connect",        "fallocate",     "openat",        "close",
    "filesUpdate", "statx",          "read",          "write",         "fadvise",
    "madvise",     "send",           "recv",          "openat2",       "epollCtl",
    "splice",      "provideBuffers", "removeBuffers", "tee",           "shutdown",
    "renameat",    "unlinkat",       "mkdirat",       "symlinkat",     "linkat",
    "msgRing",     "fsetxattr",      "setxattr",      "fgetxattr",     "getxattr",
    "socket",      "uringCmd",       "sendZc",        "sendmsgZc",     "readMultishot",
    "waitid",      "futexWait",      "futexWake",     "futexWaitv",    "fixedFdInstall",
    "ftruncate",   "bind",           "listen",        "recvZc",        "epollWait",
    "readvFixed",  "writevFixed",    "pipe",          "nop128",        "uringCmd128",
};
inline constexpr size_t kOpCount = sizeof(kOps) / sizeof(kOps[0]);

// io_uring_setup() flags worth knowing, with every flag each one needs to be
// accepted (DEFER_TASKRUN needs SINGLE_ISSUER, TASKRUN_FLAG needs COOP_TASKRUN).
inline constexpr uint32_t kSetupCqsize = 1u << 3;
inline constexpr uint32_t kSetupSubmitAll = 1u << 7;
inline constexpr uint32_t kSetupCoopTaskrun = 1u << 8;
inline constexpr uint32_t kSetupTaskrunFlag = 1u << 9;
inline constexpr uint32_t kSetupSingleIssuer = 1u << 12;
inline constexpr uint32_t kSetupDeferTaskrun = 1u << 13;
inline constexpr uint32_t kSetupNoSqarray = 1u << 16;

inline constexpr Bit kSetupFlags[] = {
    {"singleIssuer", kSetupSingleIssuer},                       // 6.0
    {"deferTaskrun", kSetupSingleIssuer | kSetupDeferTaskrun},  // 6.1
    {"coopTaskrun", kSetupCoopTaskrun},                         // 5.19
    {"taskrunFlag", kSetupCoopTaskrun | kSetupTaskrunFlag},     // 5.19
    {"submitAll", kSetupSubmitAll},                             // 5.18
    {"cqsize", kSetupCqsize},                                   // 5.5
    {"noSqarray", kSetupNoSqarray},                             // 6.6
};
inline constexpr size_t kSetupFlagCount = sizeof(kSetupFlags) / sizeof(kSetupFlags[0]);

}  // namespace uring_tables
}  // namespace fastport

#endif  // FASTPORT_COMMON_URING_TABLES_H_
