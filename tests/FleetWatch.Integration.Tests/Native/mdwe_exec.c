/* Runs a program with the kernel's Memory-Deny-Write-Execute policy (prctl PR_SET_MDWE, Linux 6.3+), which is what
 * systemd's MemoryDenyWriteExecute=yes enforces (with seccomp there): no mapping may become writable and executable,
 * so no JIT. The test runs the Native AOT agent under it to back that line of the shipped unit.
 * Exit 3: the kernel refused the policy (too old); 4: exec failed. */
#include <stdio.h>
#include <sys/prctl.h>
#include <unistd.h>

#ifndef PR_SET_MDWE
#define PR_SET_MDWE 65
#endif
#ifndef PR_MDWE_REFUSE_EXEC_GAIN
#define PR_MDWE_REFUSE_EXEC_GAIN 1
#endif

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: mdwe_exec PROGRAM [ARGS...]\n");
        return 2;
    }
    if (prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0L, 0L, 0L) != 0) {
        perror("mdwe_exec: prctl(PR_SET_MDWE)");
        return 3;
    }
    execv(argv[1], argv + 1);
    perror("mdwe_exec: execv");
    return 4;
}
