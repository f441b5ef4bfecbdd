// Linked into the release binaries, which link against a Debian 11 sysroot (glibc 2.31) so they
// run on every node with glibc 2.31 or later (see the Makefile).
//
// The static libstdc++ comes from the build machine's GCC 12, which was built against glibc
// 2.36 and reads glibc's __libc_single_threaded (added in glibc 2.32) to skip atomic operations
// while a process has one thread (reference counts, the guards of function-local statics).
// glibc 2.31 has no such variable. Zero means "there may be other threads": libstdc++ then
// always takes its atomic path, which is correct with any number of threads, and the libstdc++
// built for glibc 2.31 does the same (a locked instruction where a plain one was).
//
// glibc 2.32 and later never read this copy: their own variable is internal to libc.so.6, and
// the binary's libstdc++ is linked in statically, so every reader binds to this definition.
char __libc_single_threaded = 0;
