// Winsock / Win32 error -> the positive POSIX errno the contract and JS speak.
#ifndef FASTPORT_WIN_WSA_ERRNO_H_
#define FASTPORT_WIN_WSA_ERRNO_H_

namespace fastport {

// WSAECONNRESET -> ECONNRESET, ..., and the Win32 codes some completions
// carry as-is (ERROR_NETNAME_DELETED -> ECONNRESET, ...). Unknown: EIO.
// <errno.h> numbers differ between Windows and Linux (ECONNRESET is 108
// here, 104 there); mingw's equal Windows Node's os.constants.errno, which
// is what the JS side maps numbers with.
int wsa_errno(int err);

}  // namespace fastport

#endif  // FASTPORT_WIN_WSA_ERRNO_H_
