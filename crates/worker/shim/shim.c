/*
 * jobs-shim: the first process of a job's command, under docker-init.
 *
 * The worker bakes this static binary into an image of the app's image at
 * /.jobs (crates/worker/src/runtime/shim_image.rs), and runs the job as
 *
 *     /.jobs/shim run [-e K=V]... [-a PATH]... -- CMD ARGS...
 *
 * It does four things that only a process inside the container can do:
 *
 *  1. It passes the command's stdout and stderr through to Docker
 *     unchanged, and also appends them, as records in write order, to a
 *     ring of SEGMENTS files of at most SEGMENT_BYTES under /.jobs/log.
 *     A worker that restarts reads back what it did not store from there
 *     (see crates/worker/src/capture.rs for the format's reader).
 *  2. When the command has ended, it copies each artifact PATH that lives
 *     under /tmp (a tmpfs that goes with the stopped container) to
 *     /.jobs/art/N (N is the -a flag's position), where Docker's archive
 *     API can read it after the stop.
 *  3. It forwards SIGTERM, SIGINT, SIGHUP, SIGQUIT and SIGUSR1 to the
 *     command; SIGUSR2 (the worker's "grace is over") SIGKILLs the
 *     command's process group, after which 2. still happens. It exits with
 *     the command's status: its code, or 128+N after signal N.
 *  4. It runs the command at most once per container: a second start of
 *     the container ends with the first run's status, running nothing.
 *
 *     /.jobs/shim wait
 *
 * is a warm container's first process: it waits, blocked on reading its
 * stdin, until the worker sends a job there (the magic JOBSPEC1, a u32 LE
 * length, then NUL-terminated tokens: -e K=V... -a PATH... -- CMD
 * ARGS...), then runs that as `run` does, with those env vars set over
 * the container's own and /dev/null as the command's stdin, as in a cold
 * container.
 *
 *     /.jobs/shim cat
 *
 * follows the ring from its oldest segment and writes its bytes to stdout,
 * until the run's end is written; a restarted worker runs it with `exec`.
 *
 * Built static (no libc in scratch images) by crates/worker/build.rs.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define LOG_DIR "/.jobs/log"
#define ART_DIR "/.jobs/art"
#define STATUS_FILE LOG_DIR "/status"
#define DONE_FILE LOG_DIR "/done"
#define STARTED_FILE LOG_DIR "/started"
#define EXIT_FILE LOG_DIR "/exit"
#define SEGMENTS 4
#define SEGMENT_BYTES (16u << 20)
#define READ_BYTES 65536
#define MAX_ARTIFACTS 64

/* Record types; a record is 1 type byte, a u32 LE length, the data. */
#define REC_STDOUT 1
#define REC_STDERR 2
#define REC_END 5         /* the run's output is complete */
#define REC_SEGMENT_END 6 /* the next segment follows */

/* A segment begins with this magic, its number, and the raw byte offsets
 * of stdout and stderr at its start (u64 LE each): 32 bytes. */
static const char MAGIC[8] = {'J', 'O', 'B', 'S', 'L', 'O', 'G', '1'};
/* What a warm container's job begins with on stdin (see `wait`). */
static const char SPEC_MAGIC[8] = {'J', 'O', 'B', 'S', 'P', 'E', 'C', '1'};

static volatile pid_t child = 0;
static int wake_pipe[2] = {-1, -1};

static void on_signal(int sig) {
    int saved = errno;
    if (child > 0) {
        if (sig == SIGUSR2) {
            kill(-child, SIGKILL);
            kill(child, SIGKILL);
        } else {
            kill(child, sig);
        }
    }
    errno = saved;
}

static void on_child(int sig) {
    int saved = errno;
    (void)sig;
    if (write(wake_pipe[1], "c", 1) < 0) { /* full: a wake-up is pending */ }
    errno = saved;
}

static int write_all(int fd, const void *buf, size_t len) {
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static void put_u64(unsigned char *at, uint64_t v) {
    for (int i = 0; i < 8; i++) at[i] = (unsigned char)(v >> (8 * i));
}

/* The ring's writer. A broken log (disk full) only stops the copy: the
 * pass-through to Docker goes on, and the worker reads what is there. */
struct ring {
    int fd;
    uint64_t number;   /* of the open segment */
    uint64_t size;     /* of the open segment */
    uint64_t offset[2];/* raw bytes of stdout and stderr so far */
    int broken;
};

static void ring_path(char *out, size_t cap, uint64_t number) {
    snprintf(out, cap, LOG_DIR "/seg.%u", (unsigned)(number % SEGMENTS));
}

static int ring_open(struct ring *r, uint64_t number) {
    char path[64];
    unsigned char header[32];
    ring_path(path, sizeof path, number);
    /* Unlink first: a reader holding the old file keeps reading it. */
    unlink(path);
    r->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (r->fd < 0) return -1;
    memcpy(header, MAGIC, 8);
    put_u64(header + 8, number);
    put_u64(header + 16, r->offset[0]);
    put_u64(header + 24, r->offset[1]);
    r->number = number;
    r->size = sizeof header;
    return write_all(r->fd, header, sizeof header);
}

static void ring_record(struct ring *r, int type, const void *data, uint32_t len) {
    unsigned char head[5] = {(unsigned char)type, (unsigned char)len, (unsigned char)(len >> 8),
                             (unsigned char)(len >> 16), (unsigned char)(len >> 24)};
    if (r->broken) return;
    if (type == REC_STDOUT || type == REC_STDERR) {
        if (r->size + 5 + len + 5 > SEGMENT_BYTES) {
            ring_record(r, REC_SEGMENT_END, NULL, 0);
            close(r->fd);
            if (ring_open(r, r->number + 1) < 0) {
                r->broken = 1;
                return;
            }
        }
        r->offset[type - 1] += len;
    }
    struct iovec parts[2] = {{head, 5}, {(void *)data, len}};
    size_t want = 5 + len;
    ssize_t n = writev(r->fd, parts, len ? 2 : 1);
    if (n >= 0 && (size_t)n < want) {
        /* A short write (rare): finish it byte-exactly. */
        size_t done = (size_t)n;
        if (done < 5) {
            if (write_all(r->fd, head + done, 5 - done) < 0) n = -1;
            done = 5;
        }
        if (n >= 0 && write_all(r->fd, (const char *)data + (done - 5), want - done) < 0) n = -1;
    }
    if (n < 0) r->broken = 1;
    r->size += want;
}

/* Copies `from` to `to`: files, directories and symlinks, with their modes. */
static void copy_tree(const char *from, const char *to) {
    struct stat st;
    if (lstat(from, &st) < 0) return;
    if (S_ISLNK(st.st_mode)) {
        char target[4096];
        ssize_t n = readlink(from, target, sizeof target - 1);
        if (n >= 0) {
            target[n] = 0;
            if (symlink(target, to) < 0) { /* best effort */ }
        }
    } else if (S_ISDIR(st.st_mode)) {
        if (mkdir(to, st.st_mode & 07777) < 0 && errno != EEXIST) return;
        DIR *dir = opendir(from);
        if (!dir) return;
        struct dirent *entry;
        while ((entry = readdir(dir))) {
            if (!strcmp(entry->d_name, ".") || !strcmp(entry->d_name, "..")) continue;
            char *a, *b;
            if (asprintf(&a, "%s/%s", from, entry->d_name) < 0) break;
            if (asprintf(&b, "%s/%s", to, entry->d_name) < 0) { free(a); break; }
            copy_tree(a, b);
            free(a);
            free(b);
        }
        closedir(dir);
        chmod(to, st.st_mode & 07777);
    } else if (S_ISREG(st.st_mode)) {
        int in = open(from, O_RDONLY | O_CLOEXEC);
        if (in < 0) return;
        int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, st.st_mode & 07777);
        if (out >= 0) {
            static char buf[READ_BYTES];
            ssize_t n;
            while ((n = read(in, buf, sizeof buf)) > 0)
                if (write_all(out, buf, (size_t)n) < 0) break;
            fchmod(out, st.st_mode & 07777);
            close(out);
        }
        close(in);
    }
}

static const char *base_name(const char *path) {
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/') len--;
    const char *slash = memrchr(path, '/', len);
    return slash ? slash + 1 : path;
}

static void copy_artifacts(char **paths, int count) {
    for (int i = 0; i < count; i++) {
        char dir[64], *to;
        snprintf(dir, sizeof dir, ART_DIR "/%d", i);
        if (mkdir(dir, 0755) < 0 && errno != EEXIST) continue;
        /* The name as Docker's archive of the path would have it. */
        char name[4096];
        const char *base = base_name(paths[i]);
        size_t len = strcspn(base, "/");
        if (len == 0 || len >= sizeof name) continue;
        memcpy(name, base, len);
        name[len] = 0;
        if (asprintf(&to, "%s/%s", dir, name) < 0) continue;
        copy_tree(paths[i], to);
        free(to);
    }
}

/* A second start of the same container (a worker finishing the start of
 * one whose worker died while Docker was starting it) runs nothing: it
 * ends as the first run ended, or 137 if that run was killed before its
 * end. The command runs at most once per container. */
static int ran_before(int *code) {
    int once = open(STARTED_FILE, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (once >= 0) {
        close(once);
        return 0;
    }
    if (errno != EEXIST) return 0;
    *code = 137;
    FILE *exit_file = fopen(EXIT_FILE, "re");
    if (exit_file) {
        if (fscanf(exit_file, "%d", code) != 1) *code = 137;
        fclose(exit_file);
    }
    return 1;
}

static int record_exit(int code) {
    int fd = open(EXIT_FILE, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) {
        dprintf(fd, "%d", code);
        close(fd);
    }
    return code;
}

/* Writes why the command could not start, for the worker's reason. */
static void write_status(int code, const char *program) {
    int fd = open(STATUS_FILE, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return;
    dprintf(fd, "%d %s", code, program);
    close(fd);
}

static int run(int argc, char **argv) {
    char *artifacts[MAX_ARTIFACTS];
    int artifact_count = 0, i = 2;
    for (; i < argc && strcmp(argv[i], "--"); i++) {
        if (!strcmp(argv[i], "-a") && i + 1 < argc && artifact_count < MAX_ARTIFACTS)
            artifacts[artifact_count++] = argv[++i];
        else if (!strcmp(argv[i], "-e") && i + 1 < argc)
            putenv(argv[++i]);
    }
    if (i + 1 >= argc) {
        fprintf(stderr, "jobs-shim: no command\n");
        return 125;
    }
    char **command = argv + i + 1;
    int earlier;
    if (ran_before(&earlier)) return earlier;

    int out[2], err[2], exec_status[2];
    if (pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC) || pipe2(exec_status, O_CLOEXEC) ||
        pipe2(wake_pipe, O_CLOEXEC | O_NONBLOCK)) {
        perror("jobs-shim: pipe");
        return 125;
    }
    struct ring ring = {0};
    if (ring_open(&ring, 0) < 0) ring.broken = 1;

    int forwarded[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
    sigset_t block, saved;
    sigemptyset(&block);
    for (size_t k = 0; k < sizeof forwarded / sizeof *forwarded; k++) sigaddset(&block, forwarded[k]);
    sigaddset(&block, SIGCHLD);
    sigprocmask(SIG_BLOCK, &block, &saved);

    pid_t pid = fork();
    if (pid < 0) {
        perror("jobs-shim: fork");
        return 125;
    }
    if (pid == 0) {
        /* Its own process group, so that SIGUSR2 reaches all it started. */
        setpgid(0, 0);
        signal(SIGPIPE, SIG_DFL);
        sigprocmask(SIG_SETMASK, &saved, NULL);
        dup2(out[1], 1);
        dup2(err[1], 2);
        execvp(command[0], command);
        int why = errno;
        if (write(exec_status[1], &why, sizeof why) < 0) { /* the parent sees EOF */ }
        _exit(why == ENOENT ? 127 : 126);
    }
    child = pid;
    setpgid(pid, pid);
    close(out[1]);
    close(err[1]);
    close(exec_status[1]);
    signal(SIGPIPE, SIG_IGN);
    struct sigaction action = {0};
    action.sa_handler = on_signal;
    action.sa_flags = SA_RESTART;
    for (size_t k = 0; k < sizeof forwarded / sizeof *forwarded; k++) sigaction(forwarded[k], &action, NULL);
    action.sa_handler = on_child;
    action.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    sigaction(SIGCHLD, &action, NULL);
    sigprocmask(SIG_SETMASK, &saved, NULL);

    int why = 0;
    if (read(exec_status[0], &why, sizeof why) == (ssize_t)sizeof why)
        write_status(why == ENOENT ? 127 : 126, command[0]);
    close(exec_status[0]);

    static char buf[READ_BYTES];
    struct pollfd fds[3] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}, {wake_pipe[0], POLLIN, 0}};
    int open_streams = 2, status = 0, exited = 0;
    /* Reads allowed once the command has exited: a child it left behind
     * that writes without end cannot keep the container alive. */
    int drain_budget = 64;
    while (open_streams > 0) {
        /* Once the command has exited, what its children still hold open
         * is read until it is empty, not until it closes: the container
         * stops with its first process, as under docker-init alone. */
        if (exited) {
            if (drain_budget-- <= 0) break;
            for (int s = 0; s < 2; s++)
                if (fds[s].fd >= 0) fcntl(fds[s].fd, F_SETFL, O_NONBLOCK);
        }
        if (!exited && poll(fds, 3, -1) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        for (int s = 0; s < 2; s++) {
            if (fds[s].fd < 0 || (!exited && !(fds[s].revents & (POLLIN | POLLHUP | POLLERR))))
                continue;
            ssize_t n = read(fds[s].fd, buf, sizeof buf);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) {
                if (n == 0 || exited) {
                    close(fds[s].fd);
                    fds[s].fd = -1;
                    open_streams--;
                }
                continue;
            }
            ring_record(&ring, REC_STDOUT + s, buf, (uint32_t)n);
            /* Docker gone (EPIPE): the log keeps what follows. */
            write_all(s == 0 ? 1 : 2, buf, (size_t)n);
        }
        if (!exited && (fds[2].revents & POLLIN)) {
            char drain[64];
            while (read(wake_pipe[0], drain, sizeof drain) > 0) {}
            if (waitpid(pid, &status, WNOHANG) == pid) exited = 1;
        }
    }
    if (!exited) {
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    }
    ring_record(&ring, REC_END, NULL, 0);
    if (ring.fd >= 0) close(ring.fd);
    int done = open(DONE_FILE, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (done >= 0) close(done);

    copy_artifacts(artifacts, artifact_count);
    return record_exit(WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status));
}

/* ---- cat: follow the ring for a restarted worker ---- */

static int segment_number(const char *path, uint64_t *number) {
    unsigned char header[32];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = pread(fd, header, sizeof header, 0);
    if (n != (ssize_t)sizeof header || memcmp(header, MAGIC, 8)) {
        close(fd);
        return -1;
    }
    *number = 0;
    for (int i = 0; i < 8; i++) *number |= (uint64_t)header[8 + i] << (8 * i);
    return fd;
}

/* Opens the segment with the lowest number >= `at`, or -1. */
static int open_next(uint64_t at, uint64_t *number) {
    int best = -1;
    uint64_t best_number = 0;
    for (unsigned slot = 0; slot < SEGMENTS; slot++) {
        char path[64];
        uint64_t n;
        ring_path(path, sizeof path, slot);
        int fd = segment_number(path, &n);
        if (fd < 0) continue;
        if (n >= at && (best < 0 || n < best_number)) {
            if (best >= 0) close(best);
            best = fd;
            best_number = n;
        } else {
            close(fd);
        }
    }
    *number = best_number;
    return best;
}

static void pause_briefly(void) {
    struct timespec wait = {0, 20 * 1000 * 1000};
    nanosleep(&wait, NULL);
}

static int cat(void) {
    static char buf[READ_BYTES];
    uint64_t number;
    int fd;
    while ((fd = open_next(0, &number)) < 0) pause_briefly();
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n > 0) {
            if (write_all(1, buf, (size_t)n) < 0) return 1;
            continue;
        }
        /* At the end of this file: the writer goes on in it, in a newer
         * one (then this one is complete), or it is done. */
        uint64_t next_number;
        int done = access(DONE_FILE, F_OK) == 0;
        int next = open_next(number + 1, &next_number);
        if (next < 0 && !done) {
            pause_briefly();
            continue;
        }
        while ((n = read(fd, buf, sizeof buf)) > 0)
            if (write_all(1, buf, (size_t)n) < 0) return 1;
        close(fd);
        if (next < 0) return 0;
        fd = next;
        number = next_number;
    }
}

/* ---- wait: a warm container, waiting for its job ---- */

/* Reads exactly `len` bytes from fd 0; 0 on success. */
static int read_stdin(void *buf, size_t len) {
    char *p = buf;
    while (len > 0) {
        ssize_t n = read(0, p, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int wait_for_job(void) {
    /* A warm container restarted after its run (a worker's takeover)
     * ends as that run did, as `run` would. */
    int earlier;
    if (access(STARTED_FILE, F_OK) == 0 && ran_before(&earlier)) return earlier;
    /* The job arrives on stdin: SPEC_MAGIC, its length (u32 LE), then
     * `run`'s own tokens, each NUL-terminated. */
    unsigned char header[sizeof SPEC_MAGIC + 4];
    if (read_stdin(header, sizeof header) || memcmp(header, SPEC_MAGIC, sizeof SPEC_MAGIC)) {
        fprintf(stderr, "jobs-shim: no job arrived on stdin\n");
        return 125;
    }
    uint32_t length = 0;
    for (int i = 0; i < 4; i++) length |= (uint32_t)header[sizeof SPEC_MAGIC + i] << (8 * i);
    char *spec = malloc((size_t)length + 1);
    if (!spec || read_stdin(spec, length)) {
        fprintf(stderr, "jobs-shim: the job's spec was cut short\n");
        return 125;
    }
    spec[length] = '\0';
    /* The command gets what a cold container's gets: no stdin. A
     * worker that sends the spec again finds nobody reading. */
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null >= 0) {
        dup2(null, 0);
        close(null);
    }
    size_t count = 0;
    for (size_t k = 0; k < length; k++) count += spec[k] == '\0';
    char **argv = calloc(count + 3, sizeof *argv);
    if (!argv) return 125;
    int argc = 0;
    argv[argc++] = "shim";
    argv[argc++] = "run";
    for (size_t k = 0; k < length; k += strlen(spec + k) + 1) argv[argc++] = spec + k;
    argv[argc] = NULL;
    return run(argc, argv);
}

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "run")) return run(argc, argv);
    if (argc >= 2 && !strcmp(argv[1], "cat")) return cat();
    if (argc >= 2 && !strcmp(argv[1], "wait")) return wait_for_job();
    fprintf(stderr, "usage: shim run [-e K=V]... [-a PATH]... -- CMD ARGS... | shim wait | shim cat\n");
    return 125;
}
