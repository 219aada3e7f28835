/*
 * harness.c -- starting and stopping a real Mosquitto, and our own
 * daemons beside it, for the integration tests (see harness.h).
 */
#define _XOPEN_SOURCE 700 /* nftw */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define MOSQUITTO "/usr/sbin/mosquitto"
#define MATRIX_HINT "make test builds the matrix's brokers (scripts/build-mosquitto.sh)"
#define START_TIMEOUT_MS test_wait_ms(10000)
#define STOP_TIMEOUT_MS test_wait_ms(20000)

static const char default_rules[] =
    "database @DIR@/data/aimdb.db\n"
    "retention 7d\n"
    "record accuracy::{1}   weather/+/accuracy     persist buffer=ring:500\n"
    "record temp::{1}       weather/+/temperature  persist\n"
    "record forecast::{1}   weather/+/forecast     persist format=json\n"
    "record blob::{1}       raw/+/binary           persist format=binary\n"
    "record note::{1}       raw/+/text             persist format=text\n"
    "record gateway::state  gateway/state          buffer=latest\n";

long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int test_wait_ms(int ms) {
    static int scale;
    if (!scale) {
        const char *env = getenv("AIMDB_TEST_TIME_SCALE");
        int given = env ? atoi(env) : 1;
        scale = given >= 1 && given <= 100 ? given : 1;
    }
    return ms * scale;
}

void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

void copy_file(const char *from, const char *to) {
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    assert_non_null(in);
    assert_non_null(out);
    char buf[65536];
    for (size_t n; (n = fread(buf, 1, sizeof(buf), in)) > 0;)
        assert_int_equal(fwrite(buf, 1, n, out), n);
    assert_false(ferror(in));
    fclose(in);
    assert_int_equal(fclose(out), 0);
}

bool files_equal(const char *a, const char *b) {
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    bool same = fa && fb;
    while (same) {
        int ca = fgetc(fa), cb = fgetc(fb);
        same = ca == cb;
        if (ca == EOF) break;
    }
    if (fa) fclose(fa);
    if (fb) fclose(fb);
    return same;
}

long long file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : 0;
}

bool file_find(const char *dir, const char *prefix, const char *suffix, char *out, size_t cap) {
    DIR *d = opendir(dir);
    if (!d) return false;
    bool found = false;
    size_t np = strlen(prefix), ns = strlen(suffix);
    for (struct dirent *e; !found && (e = readdir(d));) {
        size_t n = strlen(e->d_name);
        found = n >= np + ns && strncmp(e->d_name, prefix, np) == 0 &&
                strcmp(e->d_name + n - ns, suffix) == 0;
        if (found) snprintf(out, cap, "%s/%s", dir, e->d_name);
    }
    closedir(d);
    return found;
}

/* text with every @DIR@ replaced by the broker's directory. */
static char *expand(const broker *b, const char *text) {
    size_t cap = strlen(text) + 1, n = 0;
    for (const char *p = text; (p = strstr(p, "@DIR@")); p += 5) cap += strlen(b->dir);
    char *out = malloc(cap);
    assert_non_null(out);
    for (const char *p = text; *p;) {
        if (strncmp(p, "@DIR@", 5) == 0) {
            n += (size_t)sprintf(out + n, "%s", b->dir);
            p += 5;
        } else {
            out[n++] = *p++;
        }
    }
    out[n] = '\0';
    return out;
}

int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t len = sizeof(a);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

void broker_init(broker *b) {
    memset(b, 0, sizeof(*b));
    snprintf(b->dir, sizeof(b->dir), "/tmp/aimdb-plugin-test-XXXXXX");
    assert_non_null(mkdtemp(b->dir));
    snprintf(b->conf_path, sizeof(b->conf_path), "%s/mosquitto.conf", b->dir);
    snprintf(b->aimdb_path, sizeof(b->aimdb_path), "%s/aimdb.conf", b->dir);
    snprintf(b->log_path, sizeof(b->log_path), "%s/broker.log", b->dir);
    snprintf(b->db_path, sizeof(b->db_path), "%s/data/aimdb.db", b->dir);
    b->port = free_port();
}

void broker_write_aimdb(broker *b, const char *text) {
    char *t = expand(b, text ? text : default_rules);
    write_file(b->aimdb_path, t);
    free(t);
}

void broker_write_conf(broker *b, const char *extra) {
    /* Started as root, Mosquitto would switch to the 'mosquitto' user, who
     * cannot write our temporary directory: stay the current user unless
     * the test says otherwise. */
    struct passwd *pw = b->user ? NULL : getpwuid(geteuid());
    char *more = expand(b, extra ? extra : "");
    char plugin[2 * HARNESS_PATH_MAX] = "";
    if (!b->without_plugin)
        snprintf(plugin, sizeof(plugin), "plugin %s\nplugin_opt_config %s\n", AIMDB_PLUGIN_PATH,
                 b->aimdb_path);
    char text[8192];
    snprintf(text, sizeof(text),
             "listener %d 127.0.0.1\n"
             "allow_anonymous true\n"
             "user %s\n"
             "log_dest stderr\n"
             "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
             "%s"
             "%s\n",
             b->port, b->user ? b->user : pw ? pw->pw_name : "root", plugin, more);
    free(more);
    write_file(b->conf_path, text);
}

static bool accepts_connections(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return false;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    return ok;
}

/* A test that fails half-way never leaves a broker behind: each dies with
 * the process that started it (PR_SET_PDEATHSIG), and brokers still
 * running when the test program exits are killed then. */
#define MAX_RUNNING 16
static pid_t running[MAX_RUNNING];

static void kill_running(void) {
    for (int i = 0; i < MAX_RUNNING; i++)
        if (running[i] > 0) kill(running[i], SIGKILL);
}

static void track(pid_t pid, pid_t replace) {
    static bool registered;
    if (!registered) registered = atexit(kill_running) == 0;
    for (int i = 0; i < MAX_RUNNING; i++) {
        if (running[i] == replace) {
            running[i] = pid;
            return;
        }
    }
}

/* The broker under test: AIMDB_TEST_MOSQUITTO, a build of the
 * compatibility matrix (tests/plugin/CMakeLists.txt), else Debian's. */
static const char *broker_binary(void) {
    const char *path = getenv("AIMDB_TEST_MOSQUITTO");
    return path && *path ? path : MOSQUITTO;
}

/* fork and exec path with argv in dir, stdin from /dev/null, stdout and
 * stderr appended to log_path; the child dies with the test.  libdir (if
 * not NULL) comes first on the child's library path. */
static pid_t spawn_logged(const char *dir, const char *log_path, const char *path,
                          char *const argv[], bool preload, const char *libdir) {
    pid_t parent = getpid();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid > 0) {
        track(pid, 0);
        return pid;
    }
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) _exit(126);
    int log = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    int null = open("/dev/null", O_RDONLY);
    if (log < 0 || null < 0) _exit(126);
    dup2(null, 0);
    dup2(log, 1);
    dup2(log, 2);
    if (chdir(dir) != 0) _exit(126);
#ifdef AIMDB_TEST_PRELOAD
    if (preload) setenv("LD_PRELOAD", AIMDB_TEST_PRELOAD, 1);
#endif
    if (libdir) setenv("LD_LIBRARY_PATH", libdir, 1);
    (void)preload;
    execv(path, argv);
    _exit(127);
}

/* A matrix build runs with its own libmosquitto (AIMDB_TEST_MOSQUITTO_LIBDIR),
 * as an installation of that build would: the plugin's libmosquitto.so.1
 * is then that version's. */
static pid_t spawn_broker(broker *b, const char *binary) {
    char *argv[] = {(char *)binary, "-c", b->conf_path, NULL};
    const char *libdir = getenv("AIMDB_TEST_MOSQUITTO_LIBDIR");
    /* The ASan runtime is for our plugin; a broker without it is not ours
     * to check (Mosquitto 2.0.11 leaks a persistent session at exit). */
    return spawn_logged(b->dir, b->log_path, binary, argv, !b->without_plugin,
                        libdir && *libdir ? libdir : NULL);
}

/* Lines of path that contain text (0 if there is no file). */
static size_t file_count(const char *path, const char *text) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[4096];
    size_t n = 0;
    while (fgets(line, sizeof(line), f)) n += strstr(line, text) != NULL;
    fclose(f);
    return n;
}

/* Started means Mosquitto said " running", not only that the port accepts:
 * it opens its listeners before it installs its signal handlers, and a
 * SIGTERM in between kills it (status 143) instead of stopping it.  The log
 * is appended to across restarts, so the line counted is a new one. */
bool broker_start(broker *b, int *status) {
    assert_int_equal(b->pid, 0);
    const char *binary = broker_binary();
    if (access(binary, X_OK) != 0) {
        fprintf(stderr, "no broker at %s: %s\n", binary, MATRIX_HINT);
        if (status) *status = -1;
        return false;
    }
    size_t runs_before = file_count(b->log_path, " running");
    b->pid = spawn_broker(b, binary);
    for (long long deadline = now_ms() + START_TIMEOUT_MS; now_ms() < deadline;) {
        int st;
        if (waitpid(b->pid, &st, WNOHANG) == b->pid) {
            track(0, b->pid);
            b->pid = 0;
            if (status) *status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            return false;
        }
        if (file_count(b->log_path, " running") > runs_before && accepts_connections(b->port))
            return true;
        sleep_ms(10);
    }
    broker_kill9(b);
    if (status) *status = -1;
    return false;
}

bool file_contains(const char *path, const char *text) {
    FILE *f = fopen(path, "r");
    if (!f) return false;
    char line[4096];
    bool found = false;
    while (!found && fgets(line, sizeof(line), f)) found = strstr(line, text) != NULL;
    fclose(f);
    return found;
}

bool file_wait_for(const char *path, const char *text, int timeout_ms) {
    for (long long deadline = now_ms() + timeout_ms;; sleep_ms(20)) {
        if (file_contains(path, text)) return true;
        if (now_ms() >= deadline) return false;
    }
}

bool broker_start_weather(broker *b) {
    broker_init(b);
    broker_write_aimdb(b, NULL);
    broker_write_conf(b, NULL);
    if (broker_start(b, NULL)) return true;
    broker_log_dump(b);
    return false;
}

void broker_start_plain(broker *b) {
    broker_init(b);
    b->without_plugin = true;
    broker_write_conf(b, NULL);
    assert_true(broker_start(b, NULL));
}

static bool log_has(const broker *b, const char *text) { return file_contains(b->log_path, text); }

bool broker_log_wait(broker *b, const char *text, int timeout_ms) {
    return file_wait_for(b->log_path, text, timeout_ms);
}

/* A stack frame of a sanitizer report ("    #3 0x... in fn file:line")
 * that mentions text. */
static bool log_has_frame(const broker *b, const char *text) {
    FILE *f = fopen(b->log_path, "r");
    if (!f) return false;
    char line[4096];
    bool found = false;
    while (!found && fgets(line, sizeof(line), f))
        found = strncmp(line, "    #", 5) == 0 && strstr(line, text) != NULL;
    fclose(f);
    return found;
}

bool broker_log_blames_us(broker *b) {
    if (log_has(b, "ERROR: AddressSanitizer") || log_has(b, "runtime error:")) return true;
    return log_has(b, "ERROR: LeakSanitizer") &&
           (log_has_frame(b, "aimdb_mosquitto.so") || log_has_frame(b, "/plugin/") ||
            log_has_frame(b, "/core/"));
}

void file_dump(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return;
    char line[4096];
    fprintf(stderr, "---- %s\n", path);
    while (fgets(line, sizeof(line), f)) fputs(line, stderr);
    fprintf(stderr, "----\n");
    fclose(f);
}

void broker_log_dump(broker *b) { file_dump(b->log_path); }

/* The child's exit status (128 + signal if killed), or -1 if it is still
 * running after timeout_ms. */
static int reap_pid(pid_t pid, int timeout_ms) {
    for (long long deadline = now_ms() + timeout_ms; now_ms() < deadline; sleep_ms(5)) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            track(0, pid);
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
    }
    return -1;
}

static int reap(broker *b, int timeout_ms) {
    int status = reap_pid(b->pid, timeout_ms);
    if (status >= 0) b->pid = 0;
    return status;
}

static void kill9(pid_t pid) {
    kill(pid, SIGKILL);
    int st;
    waitpid(pid, &st, 0);
    track(0, pid);
}

/* ------------------------------------------------------------ daemons */

void daemon_start(daemon_proc *d, const char *dir, char *const argv[]) {
    memset(d, 0, sizeof(*d));
    const char *base = strrchr(argv[0], '/');
    snprintf(d->log_path, sizeof(d->log_path), "%s/%s.log", dir, base ? base + 1 : argv[0]);
    remove(d->log_path); /* one log per run: waits must not see an earlier run's lines */
    d->pid = spawn_logged(dir, d->log_path, argv[0], argv, false, NULL);
}

int daemon_wait_exit(daemon_proc *d, int timeout_ms) {
    if (!d->pid) return -1;
    int status = reap_pid(d->pid, timeout_ms);
    if (status >= 0) d->pid = 0;
    return status;
}

int daemon_stop(daemon_proc *d, int signo) {
    if (!d->pid) return -1;
    kill(d->pid, signo);
    int status = daemon_wait_exit(d, STOP_TIMEOUT_MS);
    if (status < 0) {
        kill9(d->pid);
        d->pid = 0;
    }
    bool sanitizer = file_contains(d->log_path, "ERROR: AddressSanitizer") ||
                     file_contains(d->log_path, "runtime error:") ||
                     file_contains(d->log_path, "ERROR: LeakSanitizer");
    if (status != 0 || sanitizer) file_dump(d->log_path);
    assert_false(sanitizer);
    return status;
}

/* SIGTERM, again every second until the broker exits: Mosquitto 2.0.11
 * installs its handler, logs "running" and only then sets its loop's flag,
 * so a SIGTERM in between (a test that stops the broker right after it
 * came up, under ASan's slower start) is lost.  A repeat changes nothing
 * for a broker that already got the first. */
int broker_stop(broker *b) {
    if (!b->pid) return -1;
    int status = -1;
    for (long long deadline = now_ms() + STOP_TIMEOUT_MS; status < 0 && now_ms() < deadline;) {
        kill(b->pid, SIGTERM);
        status = reap(b, 1000);
    }
    if (status < 0) broker_kill9(b);
    bool sanitizer = log_has(b, "ERROR: LeakSanitizer") || broker_log_blames_us(b);
    if (status != 0 || sanitizer) broker_log_dump(b);
    assert_false(sanitizer);
    return status;
}

void broker_kill9(broker *b) {
    if (!b->pid) return;
    kill9(b->pid);
    b->pid = 0;
}

void broker_signal(broker *b, int signo) {
    assert_true(b->pid > 0);
    assert_int_equal(kill(b->pid, signo), 0);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void broker_cleanup(broker *b) {
    if (b->pid) broker_stop(b);
    if (b->dir[0]) nftw(b->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    b->dir[0] = '\0';
}

int broker_stop_and_clean(broker *b) {
    int status = broker_stop(b);
    broker_cleanup(b);
    return status == 0 ? 0 : -1;
}

int run_tool(char *const argv[], char *out, size_t cap, int timeout_ms) {
    int fds[2];
    if (pipe(fds) != 0) return -1;
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        dup2(null, 0);
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execvp(argv[0], argv);
        _exit(127);
    }
    close(fds[1]);
    size_t n = 0;
    long long deadline = now_ms() + timeout_ms;
    bool timed_out = false;
    for (;;) {
        int left = (int)(deadline - now_ms());
        if (left <= 0) {
            timed_out = true;
            break;
        }
        struct pollfd p = {.fd = fds[0], .events = POLLIN};
        if (poll(&p, 1, left) <= 0) continue;
        char buf[4096];
        ssize_t r = read(fds[0], buf, sizeof(buf));
        if (r <= 0) break;
        size_t take = (size_t)r < cap - 1 - n ? (size_t)r : cap - 1 - n;
        memcpy(out + n, buf, take);
        n += take;
    }
    out[n] = '\0';
    close(fds[0]);
    if (timed_out) kill(pid, SIGKILL);
    int st;
    waitpid(pid, &st, 0);
    if (timed_out || !WIFEXITED(st)) return -1;
    return WEXITSTATUS(st);
}

long long sql_number(const char *path, const char *sql) {
    char out[256];
    char *argv[] = {"sqlite3", (char *)path, (char *)sql, NULL};
    return run_tool(argv, out, sizeof(out), 10000) == 0 ? atoll(out) : -1;
}
