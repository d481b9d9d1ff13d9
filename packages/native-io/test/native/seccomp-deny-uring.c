/*
 * seccomp-deny-uring: run a command with io_uring refused, the way a
 * container's seccomp profile (Docker's default since 2023) refuses it.
 *
 *   seccomp-deny-uring [-e ERRNO] command [args...]
 *
 * Installs a seccomp BPF filter that makes io_uring_setup, io_uring_enter and
 * io_uring_register fail with ERRNO (default EPERM) and allows everything
 * else, then execs the command (the filter survives exec). Compiled by
 * test/native/seccomp.test.ts at test time with `cc`.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
#define ARCH_NR AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define ARCH_NR AUDIT_ARCH_AARCH64
#elif defined(__i386__)
#define ARCH_NR AUDIT_ARCH_I386
#elif defined(__arm__)
#define ARCH_NR AUDIT_ARCH_ARM
#elif defined(__riscv) && __riscv_xlen == 64
#define ARCH_NR AUDIT_ARCH_RISCV64
#elif defined(__powerpc64__) && defined(__LITTLE_ENDIAN__)
#define ARCH_NR AUDIT_ARCH_PPC64LE
#elif defined(__s390x__)
#define ARCH_NR AUDIT_ARCH_S390X
#else
#error "seccomp-deny-uring: unknown architecture, add its AUDIT_ARCH_* here"
#endif

#ifndef __NR_io_uring_setup
#define __NR_io_uring_setup 425
#endif
#ifndef __NR_io_uring_enter
#define __NR_io_uring_enter 426
#endif
#ifndef __NR_io_uring_register
#define __NR_io_uring_register 427
#endif

int main(int argc, char** argv) {
  int err = EPERM;
  int first = 1;
  if (argc > 2 && strcmp(argv[1], "-e") == 0) {
    char* end = NULL;
    long v = strtol(argv[2], &end, 10);
    if (end == argv[2] || *end != '\0' || v <= 0 || v > 4095) {
      fprintf(stderr, "seccomp-deny-uring: bad errno '%s'\n", argv[2]);
      return 2;
    }
    err = (int)v;
    first = 3;
  }
  if (first >= argc) {
    fprintf(stderr, "usage: seccomp-deny-uring [-e ERRNO] command [args...]\n");
    return 2;
  }

  struct sock_filter filter[] = {
      /* Another ABI than the one these numbers belong to: leave it alone. */
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ARCH_NR, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 2, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_enter, 1, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_register, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((unsigned)err & SECCOMP_RET_DATA)),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = {
      .len = (unsigned short)(sizeof(filter) / sizeof(filter[0])),
      .filter = filter,
  };

  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    perror("seccomp-deny-uring: prctl(PR_SET_NO_NEW_PRIVS)");
    return 2;
  }
  if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) != 0) {
    perror("seccomp-deny-uring: prctl(PR_SET_SECCOMP)");
    return 2;
  }
  /* Prove the filter is in force before handing over. */
  errno = 0;
  if (syscall(__NR_io_uring_setup, 1, NULL) != -1 || errno != err) {
    fprintf(stderr, "seccomp-deny-uring: filter not effective (errno %d)\n", errno);
    return 2;
  }
  execvp(argv[first], &argv[first]);
  perror("seccomp-deny-uring: execvp");
  return 127;
}
