// argc/argv for the Swift runtime, without its start-up scan.
//
// The static Swift runtime learns argv on Linux through a constructor in its CommandLine.cpp that
// reads /proc/self/maps with sscanf to find the stack: ~124,000 instructions, a fifth of a whole
// VERSION invocation (callgrind). glibc already hands every ELF constructor (argc, argv, envp),
// so this file defines the two entry points of that runtime file itself. The linker then has
// nothing left to pull CommandLine.cpp.o out of libswiftCore.a for, and its scan never runs.
// The signatures are the runtime's (stdlib/public/stubs/CommandLine.cpp, SWIFT_RUNTIME_STDLIB_API).
#include <stddef.h>

static char **capturedArgv;
static int capturedArgc;
static char **overrideArgv;
static int overrideArgc;

static void captureArguments(int argc, char **argv, char **envp) {
    (void)envp;
    capturedArgc = argc;
    capturedArgv = argv;
}

__attribute__((section(".init_array"), used))
static void (*const captureArgumentsAtStart)(int, char **, char **) = captureArguments;

__attribute__((visibility("default")))
char **_swift_stdlib_getUnsafeArgvArgc(int *outArgLen) {
    if (overrideArgv) {
        *outArgLen = overrideArgc;
        return overrideArgv;
    }
    static char *emptyArgv[] = { NULL };
    if (!capturedArgv) {
        *outArgLen = 0;
        return emptyArgv;
    }
    *outArgLen = capturedArgc;
    return capturedArgv;
}

__attribute__((visibility("default")))
void _swift_stdlib_overrideUnsafeArgvArgc(char **argv, int argc) {
    overrideArgv = argv;
    overrideArgc = argc;
}
