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
 *  5. With -i (an interactive run), the command's stdin comes from the
 *     socket /.jobs/log/stdin.sock, not from Docker: the worker sends
 *     numbered input there through `shim feed`, and the shim writes each
 *     byte to the command once, in order, and acknowledges how far it got.
 *     The socket outlives the worker, so a restarted worker goes on where
 *     the dead one stopped, neither losing nor repeating a byte. With -t
 *     as well, the command runs at a terminal the shim makes (a pty, whose
 *     output is the shim's stdout); its size comes as frames on the socket.
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
 *     /.jobs/shim feed
 *
 * relays between its own stdin and stdout and the socket of `run -i`: the
 * worker runs it with `exec`. Frames to the shim: 'D', the offset of the
 * first byte (u64 LE), the length (u32 LE) and the bytes; 'E' and the
 * offset where the input ends (u64 LE); 'W', rows and columns (u16 LE
 * each), the terminal's size under -t. From the shim: 'A' and the offset
 * up to which the command's stdin was written (u64 LE), first on every
 * connection and then as it moves.
 *
 *     /.jobs/shim cat
 *
 * follows the ring from its oldest segment and writes its bytes to stdout,
 * until the run's end is written; a restarted worker runs it with `exec`.
 *
 *     /.jobs/shim du
 *
 * prints how much /.jobs/log and /.jobs/art hold (blocks, at least 4 KiB an
 * entry), for the worker's cap on them; it fails (exit 1) on an entry it
 * cannot read, where bytes could hide.
 *
 * The worker execs the shim only from its read-only volume at /.jobs
 * (crates/worker/src/runtime/shim_volume.rs), mode 0111: the job cannot
 * replace it, and since it cannot read it either the kernel makes every
 * shim process undumpable (no ptrace of it by the job).
 *
 * Built static (no libc in scratch images) by crates/worker/build.rs.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <termios.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/un.h>
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
#define STDIN_SOCKET LOG_DIR "/stdin.sock"
#define SEGMENTS 4
#define SEGMENT_BYTES (16u << 20)
/* One read of the command's output: also the longest record of the ring, which
 * the worker refuses past (MAX_RECORD in crates/worker/src/capture.rs). */
#define READ_BYTES 65536
#define MAX_ARTIFACTS 64
#define MAX_FEEDERS 4
#define MAX_INPUT_FRAME 65536
#define INPUT_HEADER 13 /* 'D', u64 offset, u32 length */

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

/* Copies `from` to `to`: files, directories and symlinks, with their modes,
 * never leaving the filesystem `dev` (the /tmp tmpfs), as `cp -x` does. So
 * the copy is at most the tmpfs's size: a path that leads elsewhere through
 * a symlink (`/tmp/x/art` with /tmp/x -> /.jobs) is not copied, and neither
 * is the uploads' volume at /tmp/uploads nor the copy's own destination. */
/* What the copies of all artifacts may still take: /tmp's size, so that
 * paths that overlap (`-a /tmp -a /tmp/out`) cannot copy it twice over and
 * pass the worker's cap on /.jobs. */
static uint64_t copy_budget;

static void copy_tree(const char *from, const char *to, dev_t dev) {
    struct stat st;
    if (lstat(from, &st) < 0 || st.st_dev != dev) return;
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
            copy_tree(a, b, dev);
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
            while (copy_budget > 0 && (n = read(in, buf, sizeof buf)) > 0) {
                if ((uint64_t)n > copy_budget) n = (ssize_t)copy_budget;
                if (write_all(out, buf, (size_t)n) < 0) break;
                copy_budget -= (uint64_t)n;
            }
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
    struct stat tmp;
    struct statvfs tmp_fs;
    if (stat("/tmp", &tmp) < 0 || statvfs("/tmp", &tmp_fs) < 0) return;
    copy_budget = (uint64_t)tmp_fs.f_blocks * tmp_fs.f_frsize;
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
        copy_tree(paths[i], to, tmp.st_dev);
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

/* ---- the command's stdin through a socket (run -i) ---- */

static uint64_t get_u64(const unsigned char *at) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)at[i] << (8 * i);
    return v;
}

static uint32_t get_u32(const unsigned char *at) {
    return (uint32_t)at[0] | (uint32_t)at[1] << 8 | (uint32_t)at[2] << 16 | (uint32_t)at[3] << 24;
}

/* One connection of `shim feed`: frames come in, acks go out. */
struct feeder {
    int fd;
    uint64_t serial;   /* the order of connections: the oldest gives way */
    uint64_t acked;    /* the last ack it was sent; UINT64_MAX: none yet */
    size_t len;        /* bytes in buf */
    unsigned char buf[INPUT_HEADER + MAX_INPUT_FRAME];
};

struct input {
    int listener;       /* -1 once closed */
    int pipe;           /* the command's stdin; -1 once closed */
    int tty;            /* under -t: the terminal's master side, else -1 */
    uint64_t delivered; /* input bytes written to the command's stdin */
    uint64_t end_at;    /* where the input ends, once `ended` */
    int ended;
    uint64_t serial;
    size_t pending_off, pending_len; /* of a frame's part not yet written */
    unsigned char pending[MAX_INPUT_FRAME];
    struct feeder feeders[MAX_FEEDERS];
};

static int input_open(struct input *in, int pipe_end, int tty) {
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    strncpy(addr.sun_path, STDIN_SOCKET, sizeof addr.sun_path - 1);
    in->pipe = pipe_end;
    in->tty = tty;
    for (int i = 0; i < MAX_FEEDERS; i++) in->feeders[i].fd = -1;
    unlink(STDIN_SOCKET);
    in->listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (in->listener < 0) return -1;
    if (bind(in->listener, (struct sockaddr *)&addr, sizeof addr) < 0 ||
        listen(in->listener, MAX_FEEDERS) < 0)
        return -1;
    return fcntl(pipe_end, F_SETFL, O_NONBLOCK);
}

static void close_fd(int *fd) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
}

static void feeder_close(struct feeder *f) {
    close_fd(&f->fd);
    f->len = 0;
}

/* The run is over: no more input, and `shim feed` ends. */
static void input_close(struct input *in) {
    close_fd(&in->listener);
    unlink(STDIN_SOCKET);
    close_fd(&in->pipe);
    for (int i = 0; i < MAX_FEEDERS; i++) feeder_close(&in->feeders[i]);
}

static void input_accept(struct input *in) {
    int fd;
    while ((fd = accept4(in->listener, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0) {
        /* A worker that connects again has given its older connection up. */
        struct feeder *slot = &in->feeders[0];
        for (int i = 0; i < MAX_FEEDERS; i++) {
            struct feeder *f = &in->feeders[i];
            if (f->fd < 0) {
                slot = f;
                break;
            }
            if (f->serial < slot->serial) slot = f;
        }
        feeder_close(slot);
        slot->fd = fd;
        slot->serial = ++in->serial;
        slot->acked = UINT64_MAX;
    }
}

static void input_read(struct feeder *f) {
    size_t room = sizeof f->buf - f->len;
    if (f->fd < 0 || room == 0) return;
    ssize_t n = read(f->fd, f->buf + f->len, room);
    if (n > 0)
        f->len += (size_t)n;
    else if (n == 0 || (errno != EAGAIN && errno != EINTR))
        feeder_close(f); /* what it held unacknowledged is sent again */
}

/* The size of the whole frame at the head of f's buffer: 0 while it is
 * incomplete, -1 if it is malformed. */
static long frame_size(const struct feeder *f) {
    if (f->len == 0) return 0;
    if (f->buf[0] == 'E') return f->len >= 9 ? 9 : 0;
    if (f->buf[0] == 'W') return f->len >= 5 ? 5 : 0;
    if (f->buf[0] != 'D') return -1;
    if (f->len < INPUT_HEADER) return 0;
    uint32_t length = get_u32(f->buf + 9);
    if (length > MAX_INPUT_FRAME) return -1;
    return f->len >= INPUT_HEADER + length ? (long)(INPUT_HEADER + length) : 0;
}

/* Takes one frame in: its bytes the command has not had become pending. */
static void input_take(struct input *in, const unsigned char *frame) {
    if (frame[0] == 'W') {
        /* The kernel tells the command's foreground group (SIGWINCH). */
        struct winsize size = {.ws_row = (unsigned short)(frame[1] | frame[2] << 8),
                               .ws_col = (unsigned short)(frame[3] | frame[4] << 8)};
        if (in->tty >= 0) ioctl(in->tty, TIOCSWINSZ, &size);
        return;
    }
    uint64_t offset = get_u64(frame + 1);
    if (frame[0] == 'E') {
        /* A terminal has no end of input to close: only a pipe does. An end
         * below what was written ends the input now. */
        if (in->tty >= 0) return;
        in->ended = 1;
        in->end_at = offset;
        return;
    }
    uint32_t length = get_u32(frame + 9);
    /* A resend of bytes already written is dropped. A frame that skips
     * ahead (none should) is dropped unacknowledged: it comes again. */
    if (offset > in->delivered || length > UINT64_MAX - offset || offset + length <= in->delivered)
        return;
    size_t skip = (size_t)(in->delivered - offset);
    if (in->pipe < 0) {
        /* The command closed its stdin: the bytes go nowhere, as they
         * would into a closed pipe. */
        in->delivered = offset + length;
        return;
    }
    memcpy(in->pending, frame + INPUT_HEADER + skip, length - skip);
    in->pending_off = 0;
    in->pending_len = length - skip;
}

/* Sends every connection the ack it lacks; one that cannot take it now
 * gets it when it can (POLLOUT). */
static void input_ack(struct input *in) {
    unsigned char ack[9] = {'A'};
    put_u64(ack + 1, in->delivered);
    for (int i = 0; i < MAX_FEEDERS; i++) {
        struct feeder *f = &in->feeders[i];
        if (f->fd < 0 || f->acked == in->delivered) continue;
        ssize_t n = send(f->fd, ack, sizeof ack, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n == (ssize_t)sizeof ack)
            f->acked = in->delivered;
        else if (n >= 0 || (errno != EAGAIN && errno != EINTR))
            feeder_close(f); /* a cut ack would garble the ones after it */
    }
}

/* Moves the input along as far as it goes without blocking. */
static void input_pump(struct input *in) {
    for (;;) {
        while (in->pending_off < in->pending_len) {
            ssize_t n = write(in->pipe, in->pending + in->pending_off, in->pending_len - in->pending_off);
            if (n > 0) {
                in->pending_off += (size_t)n;
                in->delivered += (uint64_t)n;
                continue;
            }
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && errno == EAGAIN) goto done; /* the command is not reading */
            /* The command closed its stdin (EPIPE). */
            in->delivered += in->pending_len - in->pending_off;
            in->pending_off = in->pending_len;
            close_fd(&in->pipe);
        }
        if (in->ended && in->delivered >= in->end_at) close_fd(&in->pipe);
        int took = 0;
        for (int i = 0; i < MAX_FEEDERS && !took; i++) {
            struct feeder *f = &in->feeders[i];
            long size = f->fd < 0 ? 0 : frame_size(f);
            if (size < 0) feeder_close(f);
            if (size <= 0) continue;
            input_take(in, f->buf);
            memmove(f->buf, f->buf + size, f->len - (size_t)size);
            f->len -= (size_t)size;
            took = 1;
        }
        if (!took) break;
    }
done:
    input_ack(in);
}

/* The input's poll entries: the listener, the command's stdin, then each
 * connection; INPUT_FDS of them, unused ones -1. */
#define INPUT_FDS (2 + MAX_FEEDERS)

static void input_poll_fds(const struct input *in, struct pollfd *fds) {
    fds[0] = (struct pollfd){in->listener, POLLIN, 0};
    fds[1] = (struct pollfd){in->pending_off < in->pending_len ? in->pipe : -1, POLLOUT, 0};
    for (int i = 0; i < MAX_FEEDERS; i++) {
        const struct feeder *f = &in->feeders[i];
        short events = (f->len < sizeof f->buf ? POLLIN : 0) | (f->acked != in->delivered ? POLLOUT : 0);
        fds[2 + i] = (struct pollfd){f->fd, events, 0};
    }
}

static void input_events(struct input *in, const struct pollfd *fds) {
    if (fds[0].revents & POLLIN) input_accept(in);
    for (int i = 0; i < MAX_FEEDERS; i++)
        if (fds[2 + i].revents & (POLLIN | POLLHUP | POLLERR)) input_read(&in->feeders[i]);
    input_pump(in);
}

static struct input stdin_input;

static int run(int argc, char **argv) {
    char *artifacts[MAX_ARTIFACTS];
    int artifact_count = 0, i = 2, socket_stdin = 0, terminal = 0;
    for (; i < argc && strcmp(argv[i], "--"); i++) {
        if (!strcmp(argv[i], "-i"))
            socket_stdin = 1;
        else if (!strcmp(argv[i], "-t"))
            terminal = 1;
        else if (!strcmp(argv[i], "-a") && i + 1 < argc && artifact_count < MAX_ARTIFACTS)
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

    int out[2], err[2], exec_status[2], in[2] = {-1, -1};
    if (pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC) || pipe2(exec_status, O_CLOEXEC) ||
        pipe2(wake_pipe, O_CLOEXEC | O_NONBLOCK) || (socket_stdin && pipe2(in, O_CLOEXEC))) {
        perror("jobs-shim: pipe");
        return 125;
    }
    /* Under -t the command's stdin, stdout and stderr are a terminal's
     * slave side; the shim reads the master side as the command's stdout
     * and writes its input there. */
    int master = -1;
    char *slave = NULL;
    if (socket_stdin && terminal) {
        master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (master < 0 || grantpt(master) < 0 || unlockpt(master) < 0 || !(slave = ptsname(master))) {
            perror("jobs-shim: a terminal");
            return 125;
        }
        close_fd(&in[0]);
        close_fd(&in[1]);
        in[1] = fcntl(master, F_DUPFD_CLOEXEC, 0);
    }
    struct input *input = socket_stdin ? &stdin_input : NULL;
    if (input && input_open(input, in[1], master) < 0) {
        perror("jobs-shim: " STDIN_SOCKET);
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
        /* Its own process group, so that SIGUSR2 reaches all it started;
         * at a terminal, its own session, with the terminal its own. */
        if (slave) {
            setsid();
            int tty = open(slave, O_RDWR);
            if (tty < 0 || ioctl(tty, TIOCSCTTY, 0) < 0) _exit(125);
            dup2(tty, 0);
            dup2(tty, 1);
            dup2(tty, 2);
            if (tty > 2) close(tty);
        } else {
            setpgid(0, 0);
        }
        signal(SIGPIPE, SIG_DFL);
        sigprocmask(SIG_SETMASK, &saved, NULL);
        if (!slave) {
            if (in[0] >= 0) dup2(in[0], 0);
            dup2(out[1], 1);
            dup2(err[1], 2);
        }
        execvp(command[0], command);
        int why = errno;
        if (write(exec_status[1], &why, sizeof why) < 0) { /* the parent sees EOF */ }
        _exit(why == ENOENT ? 127 : 126);
    }
    child = pid;
    if (!slave) setpgid(pid, pid);
    close(out[1]);
    close(err[1]);
    close(exec_status[1]);
    close_fd(&in[0]);
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
    struct pollfd fds[3 + INPUT_FDS] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}, {wake_pipe[0], POLLIN, 0}};
    int open_streams = 2, status = 0, exited = 0;
    if (master >= 0) {
        /* A terminal has one stream: what the command wrote to it. */
        close_fd(&out[0]);
        close_fd(&err[0]);
        fds[0].fd = master;
        fds[1].fd = -1;
        open_streams = 1;
    }
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
        nfds_t count = 3;
        if (!exited && input) {
            input_poll_fds(input, fds + 3);
            count += INPUT_FDS;
        }
        if (!exited && poll(fds, count, -1) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        if (!exited && input) input_events(input, fds + 3);
        for (int s = 0; s < 2; s++) {
            if (fds[s].fd < 0 || (!exited && !(fds[s].revents & (POLLIN | POLLHUP | POLLERR))))
                continue;
            ssize_t n = read(fds[s].fd, buf, sizeof buf);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) {
                /* EIO: a terminal whose every slave side has closed. */
                if (n == 0 || exited || errno == EIO) {
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
        if (exited && input) input_close(input);
    }
    if (input) input_close(input);
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

/* ---- du: measure what the job's /.jobs holds ---- */

static uint64_t du_total;

static int du_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)path;
    (void)ftw;
    if (flag == FTW_DNR || flag == FTW_NS) return 1;
    /* An entry costs the host an inode and a directory slot even when it
     * holds no block: at least a page each, so that empty files count. */
    uint64_t charge = (uint64_t)st->st_blocks * 512;
    du_total += charge < 4096 ? 4096 : charge;
    return 0;
}

static int du(void) {
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    const char *dirs[] = {LOG_DIR, ART_DIR};
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
        if (nftw(dirs[i], du_entry, 16, FTW_PHYS | FTW_MOUNT) != 0) {
            fprintf(stderr, "jobs-shim: %s cannot be measured\n", dirs[i]);
            return 1;
        }
    }
    printf("%llu\n", (unsigned long long)du_total);
    return 0;
}

/* ---- feed: relay a worker's input to `run -i` ---- */

static int feed(void) {
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    strncpy(addr.sun_path, STDIN_SOCKET, sizeof addr.sun_path - 1);
    int sock;
    /* The worker feeds a run as soon as its container started, maybe
     * before the shim opened its socket. */
    for (int tries = 0;; tries++) {
        sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (sock < 0) return 1;
        if (connect(sock, (struct sockaddr *)&addr, sizeof addr) == 0) break;
        close(sock);
        if (access(DONE_FILE, F_OK) == 0 || tries >= 500) {
            fprintf(stderr, "jobs-shim: no input socket: the run is over\n");
            return 1;
        }
        pause_briefly();
    }
    signal(SIGPIPE, SIG_IGN);
    static char buf[READ_BYTES];
    struct pollfd fds[2] = {{0, POLLIN, 0}, {sock, POLLIN, 0}};
    for (;;) {
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            return 1;
        }
        if (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t n = read(sock, buf, sizeof buf);
            if (n <= 0) return 0; /* the run is over */
            if (write_all(1, buf, (size_t)n) < 0) return 1;
        }
        if (fds[0].fd >= 0 && (fds[0].revents & (POLLIN | POLLHUP | POLLERR))) {
            ssize_t n = read(0, buf, sizeof buf);
            if (n <= 0) {
                /* The worker went away: the shim closes this connection. */
                shutdown(sock, SHUT_WR);
                fds[0].fd = -1;
            } else if (write_all(sock, buf, (size_t)n) < 0) {
                return 1;
            }
        }
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
    if (argc >= 2 && !strcmp(argv[1], "feed")) return feed();
    if (argc >= 2 && !strcmp(argv[1], "du")) return du();
    fprintf(stderr, "usage: shim run [-i [-t]] [-e K=V]... [-a PATH]... -- CMD ARGS... | shim wait | shim feed | shim cat | shim du\n");
    return 125;
}
