"""Peak resident memory, for the benchmarks: of this process so far, and of a command run in a fresh child."""
import subprocess
import sys

WRAPPER = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, "
           "stderr=subprocess.DEVNULL); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def peak_rss_mb():
    """This process's peak resident set so far (VmHWM), in MiB; None where /proc is missing."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def command_peak_rss_mb(argv):
    """The peak resident set of `argv` run to completion in a fresh child process, in MiB (Linux kilobytes)."""
    done = subprocess.run([sys.executable, "-c", WRAPPER, *argv], check=True, capture_output=True, text=True)
    return int(done.stdout.split()[-1]) / 1024
