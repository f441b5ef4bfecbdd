/* maxrss COMMAND [ARGS...]: runs COMMAND with our stdin/stdout, then writes its peak RSS in KiB
 * to stderr as "maxrss_kib N" and exits with its status. It forks from this tiny process: a child spawned straight
 * from a large one (Python) would inherit that process's RSS high-water mark. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    pid_t pid = fork();
    if (pid < 0) return 2;
    if (pid == 0) { execv(argv[1], argv + 1); _exit(127); }
    int status = 0;
    struct rusage usage;
    if (wait4(pid, &status, 0, &usage) < 0) return 2;
    fprintf(stderr, "maxrss_kib %ld\n", usage.ru_maxrss);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
