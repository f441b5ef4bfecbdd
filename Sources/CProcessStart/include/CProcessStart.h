// The plugin's process start-up: see argv.c. Nothing here is called from Swift; the target only
// has to be linked into the executable, before the Swift runtime's archive.
#ifndef C_PROCESS_START_H
#define C_PROCESS_START_H
#endif
