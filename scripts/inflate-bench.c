/* scripts/inflate-bench.c - zlib vs ISA-L vs libdeflate inflate on our data
 * (issue 11: "the fastest inflate that is a Debian package").
 *
 * Not part of the build (`make` does not know it).  Build it by hand:
 *
 *   apt-get install -y zlib1g-dev libisal-dev libdeflate-dev
 *   cc -O2 scripts/inflate-bench.c -lz -lisal -ldeflate -o /tmp/inflate-bench
 *
 * Data like `make bench`'s (np.round(randn, 3) float64, numpy's
 * savez_compressed, i.e. zlib level 6, one deflate stream per member):
 *
 *   /usr/bin/python3 -c 'import numpy as np, sys
 *   r = np.random.default_rng(20240601)
 *   np.savez_compressed(sys.argv[1], big=np.round(r.standard_normal(int(sys.argv[2]) << 17), 3))
 *   ' /var/tmp/d300.npz 300          # MiB of float64; also 1024 for 1 GiB
 *
 * Run:  /tmp/inflate-bench [-r REPS] [-w KIB,...] [-c KIB,...] ARCHIVE.npz [MEMBER]
 *
 *   MEMBER     default big.npy; its raw deflate bytes are read from the
 *              archive (zip64 understood), nothing else is needed
 *   -r REPS    timed runs per mode, default 5; the median is reported
 *   -w KIB,..  output windows of the streaming modes, default 64
 *   -c KIB,..  SOZip chunk sizes (KiB of input per chunk), default
 *              32,64,256,1024; -c 0 skips the chunk part
 *
 * Wall-clock MB/s suffer from whatever else the machine runs; "MB per
 * CPU-s" (output over this process's user+sys CPU time) does much less, and
 * with one thread it equals MB/s on an idle machine.  The load average is
 * printed along.
 *
 * Everything is single-threaded and in memory: the compressed bytes are read
 * once, the output buffers are allocated and touched once before any timing
 * (so no run pays page faults of fresh memory; the minor-fault column shows
 * it), and every mode's output of every run is compared byte for byte with
 * the original (the member's data, itself checked against the zip's CRC-32
 * and size).  Comparisons are not timed: the whole-buffer modes compare after
 * the clock stops (and the buffer is zeroed before the next run), and the
 * streaming modes have one extra untimed pass that compares every window.
 * Modes run interleaved (round r runs every mode once) so that a change in
 * the machine's load hits all of them alike.  MB/s are of output, 10^6 bytes.
 *
 * Single-stream modes (the member as numpy wrote it):
 *   zlib stream     inflate() into a reused output window (-w), all input given
 *   zlib whole      one inflate(Z_FINISH) into a buffer of the exact size
 *   ISA-L stream    isal_inflate() (stateful) into a reused output window
 *   ISA-L whole     isal_inflate_stateless() into a buffer of the exact size
 *   libdeflate      libdeflate_deflate_decompress(), whole buffer (its only mode)
 *
 * SOZip-style chunks: the original is recompressed here with zlib level 6, a
 * fresh raw deflate stream per CHUNK bytes of input, each ending with
 * Z_FULL_FLUSH (the last with Z_FINISH), as SOZip writers do.  Each chunk is
 * then inflated on its own into its place in the output buffer, with
 * inflateReset + inflate (zlib), isal_inflate_stateless (ISA-L) and
 * libdeflate_deflate_decompress.  A chunk ending in a full flush has no final
 * block, which libdeflate needs (without one it returns LIBDEFLATE_BAD_DATA
 * even given the exact output size): like a SOZip reader using libdeflate, we
 * append an empty final fixed-Huffman block (the two bytes 03 00) after each
 * chunk's bytes (the chunks are laid out with that room; zlib and ISA-L are
 * given the chunk alone).  The ratio column is the member's size over the
 * chunked deflate data (the SOZip index adds 8 bytes per chunk, shown apart).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <isa-l.h>
#include <libdeflate.h>
#include <zlib.h>

#define KiB 1024u
#define MiB (1024u * 1024u)

static void die(const char *fmt, const char *arg)
{
    fprintf(stderr, "inflate-bench: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    exit(1);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        die("out of memory (%s)", "malloc");
    return p;
}

/* Allocate and touch every page, so that no timed run pays first-touch faults. */
static uint8_t *prefaulted(size_t n)
{
    uint8_t *p = xmalloc(n);
    memset(p, 0, n);
    return p;
}

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static long minflt(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_minflt;
}

static const char *loadavg(void)
{
    static char buf[64];
    char a[16] = "?", b[16] = "?", c[16] = "?";
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%15s %15s %15s", a, b, c) != 3)
            a[0] = '?', a[1] = 0;
        fclose(f);
    }
    snprintf(buf, sizeof buf, "%s %s %s", a, b, c);
    return buf;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    double *s = xmalloc(n * sizeof *s);
    memcpy(s, v, n * sizeof *s);
    qsort(s, n, sizeof *s, cmp_double);
    double m = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
    free(s);
    return m;
}

/* ------------------------------------------------------------------------ */
/* The member's raw deflate bytes, straight from the archive                  */
/* ------------------------------------------------------------------------ */
static uint16_t le16(const uint8_t *p) { return p[0] | p[1] << 8; }
static uint32_t le32(const uint8_t *p) { return le16(p) | (uint32_t)le16(p + 2) << 16; }
static uint64_t le64(const uint8_t *p) { return le32(p) | (uint64_t)le32(p + 4) << 32; }

static void xpread(int fd, void *buf, size_t n, off_t off)
{
    size_t done = 0;
    while (done < n) {
        ssize_t r = pread(fd, (char *)buf + done, n - done, off + done);
        if (r <= 0)
            die("cannot read the archive: %s", r < 0 ? strerror(errno) : "short file");
        done += r;
    }
}

struct member {
    uint8_t *cdata;     /* raw deflate bytes */
    size_t csize, usize;
    uint32_t crc;
};

static struct member read_member(const char *archive, const char *name)
{
    struct member m = {0};
    int fd = open(archive, O_RDONLY);
    if (fd < 0)
        die("cannot open %s", archive);
    struct stat st;
    fstat(fd, &st);
    size_t tail = st.st_size < 65557 ? (size_t)st.st_size : 65557;
    uint8_t *t = xmalloc(tail);
    xpread(fd, t, tail, st.st_size - tail);
    long e = -1;
    for (long i = (long)tail - 22; i >= 0; i--)
        if (le32(t + i) == 0x06054b50) {
            e = i;
            break;
        }
    if (e < 0)
        die("%s: no end of central directory", archive);
    uint64_t n = le16(t + e + 10), cdsize = le32(t + e + 12), cdoff = le32(t + e + 16);
    if (n == 0xFFFF || cdsize == 0xFFFFFFFF || cdoff == 0xFFFFFFFF) {
        if (e < 20 || le32(t + e - 20) != 0x07064b50)
            die("%s: zip64 without a locator", archive);
        uint8_t z[56];
        xpread(fd, z, 56, le64(t + e - 20 + 8));
        if (le32(z) != 0x06064b50)
            die("%s: bad zip64 end record", archive);
        n = le64(z + 32), cdsize = le64(z + 40), cdoff = le64(z + 48);
    }
    free(t);
    uint8_t *cd = xmalloc(cdsize);
    xpread(fd, cd, cdsize, cdoff);
    size_t p = 0;
    int found = 0;
    uint64_t lho = 0;
    int method = -1;
    for (uint64_t i = 0; i < n && p + 46 <= cdsize; i++) {
        if (le32(cd + p) != 0x02014b50)
            die("%s: bad central directory", archive);
        unsigned nl = le16(cd + p + 28), xl = le16(cd + p + 30), cl = le16(cd + p + 32);
        if (nl == strlen(name) && !memcmp(cd + p + 46, name, nl)) {
            found = 1;
            method = le16(cd + p + 10);
            m.crc = le32(cd + p + 16);
            m.csize = le32(cd + p + 20);
            m.usize = le32(cd + p + 24);
            lho = le32(cd + p + 42);
            const uint8_t *x = cd + p + 46 + nl, *xe = x + xl;
            while (x + 4 <= xe) {
                unsigned id = le16(x), len = le16(x + 2);
                const uint8_t *f = x + 4;
                if (id == 1) {
                    if (m.usize == 0xFFFFFFFF) m.usize = le64(f), f += 8;
                    if (m.csize == 0xFFFFFFFF) m.csize = le64(f), f += 8;
                    if (lho == 0xFFFFFFFF) lho = le64(f);
                }
                x += 4 + len;
            }
            break;
        }
        p += 46 + nl + xl + cl;
    }
    if (!found)
        die("no member %s", name);
    if (method != 8)
        die("member %s is not deflated", name);
    if (m.usize > 0xFFFFFFFFu || m.csize > 0xFFFFFFFFu)
        die("member %s: sizes past 4 GiB are not supported here", name);
    uint8_t lh[30];
    xpread(fd, lh, 30, lho);
    if (le32(lh) != 0x04034b50)
        die("%s: bad local header", archive);
    off_t data = lho + 30 + le16(lh + 26) + le16(lh + 28);
    m.cdata = xmalloc(m.csize);
    xpread(fd, m.cdata, m.csize, data);
    close(fd);
    free(cd);
    return m;
}

/* ------------------------------------------------------------------------ */
/* Single-stream modes.  Each returns the number of output bytes; with ref,  */
/* the streaming ones compare every window (the untimed verification pass).  */
/* ------------------------------------------------------------------------ */
static const uint8_t *g_in;
static size_t g_insize, g_usize;
static uint8_t *g_out;          /* exact-size output buffer (prefaulted) */
static uint8_t *g_win;          /* streaming window (prefaulted) */
static size_t g_winsize;
static const uint8_t *g_ref;    /* the original */
static int g_bad;               /* a window differed */

static void check_window(size_t at, const uint8_t *w, size_t n, const uint8_t *ref)
{
    if (ref && (at + n > g_usize || memcmp(w, ref + at, n)))
        g_bad = 1;
}

static size_t zlib_stream(const uint8_t *ref)
{
    z_stream s;
    memset(&s, 0, sizeof s);
    if (inflateInit2(&s, -15) != Z_OK)
        die("%s", "inflateInit2");
    s.next_in = (Bytef *)g_in;
    s.avail_in = g_insize;
    size_t total = 0;
    int rc;
    do {
        s.next_out = g_win;
        s.avail_out = g_winsize;
        rc = inflate(&s, Z_NO_FLUSH);
        if (rc != Z_OK && rc != Z_STREAM_END)
            die("zlib stream: %s", s.msg ? s.msg : "error");
        size_t got = g_winsize - s.avail_out;
        check_window(total, g_win, got, ref);
        total += got;
    } while (rc != Z_STREAM_END);
    inflateEnd(&s);
    return total;
}

static size_t zlib_whole(const uint8_t *ref)
{
    (void)ref;
    z_stream s;
    memset(&s, 0, sizeof s);
    if (inflateInit2(&s, -15) != Z_OK)
        die("%s", "inflateInit2");
    s.next_in = (Bytef *)g_in;
    s.avail_in = g_insize;
    s.next_out = g_out;
    s.avail_out = g_usize;
    int rc = inflate(&s, Z_FINISH);
    if (rc != Z_STREAM_END)
        die("zlib whole: %s", s.msg ? s.msg : "did not end");
    size_t total = s.total_out;
    inflateEnd(&s);
    return total;
}

static struct inflate_state g_isal;     /* ~100 KiB: not on the stack */

static size_t isal_stream(const uint8_t *ref)
{
    struct inflate_state *s = &g_isal;
    isal_inflate_init(s);
    s->crc_flag = ISAL_DEFLATE;
    s->next_in = (uint8_t *)g_in;
    s->avail_in = g_insize;
    size_t total = 0;
    while (s->block_state != ISAL_BLOCK_FINISH) {
        s->next_out = g_win;
        s->avail_out = g_winsize;
        int rc = isal_inflate(s);
        if (rc != ISAL_DECOMP_OK)
            die("ISA-L stream: error %s", rc == ISAL_INVALID_BLOCK ? "invalid block" : "(see igzip_lib.h)");
        size_t got = g_winsize - s->avail_out;
        check_window(total, g_win, got, ref);
        total += got;
        if (!got && !s->avail_in && s->block_state != ISAL_BLOCK_FINISH)
            die("%s", "ISA-L stream: input ended early");
    }
    return total;
}

static size_t isal_whole(const uint8_t *ref)
{
    (void)ref;
    struct inflate_state *s = &g_isal;
    isal_inflate_init(s);
    s->crc_flag = ISAL_DEFLATE;
    s->next_in = (uint8_t *)g_in;
    s->avail_in = g_insize;
    s->next_out = g_out;
    s->avail_out = g_usize;
    int rc = isal_inflate_stateless(s);
    if (rc != ISAL_DECOMP_OK && rc != ISAL_END_INPUT)
        die("%s", "ISA-L whole: error");
    return s->total_out;
}

static struct libdeflate_decompressor *g_ld;

static size_t ld_whole(const uint8_t *ref)
{
    (void)ref;
    size_t got = 0;
    enum libdeflate_result rc = libdeflate_deflate_decompress(g_ld, g_in, g_insize, g_out, g_usize, &got);
    if (rc != LIBDEFLATE_SUCCESS)
        die("%s", "libdeflate: error");
    return got;
}

/* ------------------------------------------------------------------------ */
/* Chunks                                                                     */
/* ------------------------------------------------------------------------ */
struct chunks {
    size_t size, n;             /* input bytes per chunk, number of chunks */
    uint8_t *buf;               /* chunk i at buf + off[i], len[i] bytes, then 03 00 */
    size_t *off, *len;
    size_t total;               /* sum of len[] */
    double ctime, ccpu;         /* compressing, one thread */
};

static struct chunks make_chunks(const uint8_t *src, size_t usize, size_t size)
{
    struct chunks c = {0};
    c.size = size;
    c.n = (usize + size - 1) / size;
    size_t bound = 0;
    z_stream s;
    memset(&s, 0, sizeof s);
    if (deflateInit2(&s, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        die("%s", "deflateInit2");
    size_t per = deflateBound(&s, size) + 16;
    bound = per * c.n;
    c.buf = xmalloc(bound);
    c.off = xmalloc(c.n * sizeof *c.off);
    c.len = xmalloc(c.n * sizeof *c.len);
    double t = mono(), u = cpu();
    size_t at = 0;
    for (size_t i = 0; i < c.n; i++) {
        size_t in = i + 1 < c.n ? size : usize - i * size;
        deflateReset(&s);
        s.next_in = (Bytef *)src + i * size;
        s.avail_in = in;
        s.next_out = c.buf + at;
        s.avail_out = per - 2;
        int flush = i + 1 < c.n ? Z_FULL_FLUSH : Z_FINISH;
        int rc = deflate(&s, flush);
        if ((flush == Z_FINISH && rc != Z_STREAM_END) || (flush != Z_FINISH && rc != Z_OK) ||
            s.avail_in || !s.avail_out)
            die("%s", "deflate of a chunk did not fit");
        c.off[i] = at;
        c.len[i] = per - 2 - s.avail_out;
        c.total += c.len[i];
        at += c.len[i];
        c.buf[at++] = 0x03;     /* empty final fixed-Huffman block, for libdeflate */
        c.buf[at++] = 0x00;
    }
    c.ctime = mono() - t;
    c.ccpu = cpu() - u;
    deflateEnd(&s);
    return c;
}

static const struct chunks *g_ch;

static size_t out_len(size_t i)
{
    return i + 1 < g_ch->n ? g_ch->size : g_usize - i * g_ch->size;
}

static size_t zlib_chunks(const uint8_t *ref)
{
    (void)ref;
    z_stream s;
    memset(&s, 0, sizeof s);
    if (inflateInit2(&s, -15) != Z_OK)
        die("%s", "inflateInit2");
    size_t total = 0;
    for (size_t i = 0; i < g_ch->n; i++) {
        size_t want = out_len(i);
        inflateReset(&s);
        s.next_in = g_ch->buf + g_ch->off[i];
        s.avail_in = g_ch->len[i];
        s.next_out = g_out + i * g_ch->size;
        s.avail_out = want;
        int rc = inflate(&s, Z_SYNC_FLUSH);
        if ((rc != Z_OK && rc != Z_STREAM_END) || s.avail_out)
            die("zlib chunk: %s", s.msg ? s.msg : "short");
        total += want;
    }
    inflateEnd(&s);
    return total;
}

static size_t isal_chunks(const uint8_t *ref)
{
    (void)ref;
    struct inflate_state *s = &g_isal;
    size_t total = 0;
    for (size_t i = 0; i < g_ch->n; i++) {
        size_t want = out_len(i);
        isal_inflate_init(s);
        s->crc_flag = ISAL_DEFLATE;
        s->next_in = g_ch->buf + g_ch->off[i];
        s->avail_in = g_ch->len[i];
        s->next_out = g_out + i * g_ch->size;
        s->avail_out = want;
        int rc = isal_inflate_stateless(s);
        if ((rc != ISAL_DECOMP_OK && rc != ISAL_END_INPUT) || s->total_out != want)
            die("%s", "ISA-L chunk: error");
        total += want;
    }
    return total;
}

static size_t ld_chunks(const uint8_t *ref)
{
    (void)ref;
    size_t total = 0;
    for (size_t i = 0; i < g_ch->n; i++) {
        size_t want = out_len(i);
        enum libdeflate_result rc = libdeflate_deflate_decompress(
            g_ld, g_ch->buf + g_ch->off[i], g_ch->len[i] + 2, g_out + i * g_ch->size, want, NULL);
        if (rc != LIBDEFLATE_SUCCESS)
            die("%s", "libdeflate chunk: error");
        total += want;
    }
    return total;
}

/* ------------------------------------------------------------------------ */
/* Timing                                                                     */
/* ------------------------------------------------------------------------ */
struct mode {
    const char *lib, *how;
    size_t (*fn)(const uint8_t *ref);
    int whole;                  /* writes g_out (compared after each run) */
    size_t win;                 /* streaming window */
    double *wall, *cpu;
    long *flt;
};

static void run_modes(struct mode *m, int nm, int reps)
{
    /* Untimed verification pass of the streaming modes (every window). */
    for (int k = 0; k < nm; k++) {
        if (m[k].whole)
            continue;
        g_winsize = m[k].win;
        g_bad = 0;
        size_t got = m[k].fn(g_ref);
        if (got != g_usize || g_bad)
            die("%s: output differs from the original", m[k].lib);
    }
    for (int r = 0; r < reps; r++)
        for (int k = 0; k < nm; k++) {
            if (m[k].whole)
                memset(g_out, 0, g_usize);
            g_winsize = m[k].win;
            long f = minflt();
            double t = mono(), u = cpu();
            size_t got = m[k].fn(NULL);
            m[k].wall[r] = mono() - t;
            m[k].cpu[r] = cpu() - u;
            m[k].flt[r] = minflt() - f;
            if (got != g_usize)
                die("%s: wrong output size", m[k].lib);
            if (m[k].whole && memcmp(g_out, g_ref, g_usize))
                die("%s: output differs from the original", m[k].lib);
        }
}

static double mbs(double secs) { return g_usize / 1e6 / secs; }

static void parse_list(const char *s, size_t *v, int *n, int max)
{
    *n = 0;
    while (*s && *n < max) {
        char *e;
        unsigned long k = strtoul(s, &e, 10);
        if (e == s)
            die("bad list: %s", s);
        if (k)
            v[(*n)++] = k * KiB;
        s = *e == ',' ? e + 1 : e;
    }
}

int main(int argc, char **argv)
{
    int reps = 5, nw = 1, nc = 4;
    size_t wins[8] = {64 * KiB}, csz[8] = {32 * KiB, 64 * KiB, 256 * KiB, 1024 * KiB};
    int opt;
    while ((opt = getopt(argc, argv, "r:w:c:")) != -1) {
        if (opt == 'r')
            reps = atoi(optarg);
        else if (opt == 'w')
            parse_list(optarg, wins, &nw, 8);
        else if (opt == 'c')
            parse_list(optarg, csz, &nc, 8);
        else
            die("usage: inflate-bench [-r REPS] [-w KIB,...] [-c KIB,...] ARCHIVE.npz [MEMBER]%s", "");
    }
    if (optind >= argc || reps < 1)
        die("usage: inflate-bench [-r REPS] [-w KIB,...] [-c KIB,...] ARCHIVE.npz [MEMBER]%s", "");
    const char *archive = argv[optind], *name = optind + 1 < argc ? argv[optind + 1] : "big.npy";

    struct member mb = read_member(archive, name);
    g_in = mb.cdata;
    g_insize = mb.csize;
    g_usize = mb.usize;
    g_out = prefaulted(g_usize);
    g_win = prefaulted(1024 * KiB > wins[0] ? 1024 * KiB : wins[0]);
    for (int i = 0; i < nw; i++)
        if (wins[i] > 1024 * KiB)
            die("-w: windows up to 1024 KiB%s", "");
    g_ld = libdeflate_alloc_decompressor();

    /* The original: zlib's output, checked against the zip's CRC-32 and size. */
    uint8_t *ref = prefaulted(g_usize);
    {
        uint8_t *o = g_out;
        g_out = ref;
        size_t got = zlib_whole(NULL);
        g_out = o;
        if (got != g_usize || crc32(0, ref, g_usize) != mb.crc)
            die("%s: the member's data does not match its CRC-32 and size", name);
    }
    g_ref = ref;

    printf("# inflate-bench: %s of %s\n\n", name, archive);
    printf("- member %zu bytes (%.0f MiB), deflated %zu bytes, %.3f:1 (one stream, as numpy wrote it)\n",
           g_usize, g_usize / (double)MiB, g_insize, (double)g_usize / g_insize);
    printf("- zlib %s, ISA-L %d.%d.%d, libdeflate %s; one thread; %d timed runs per mode, "
           "median shown; every output compared byte for byte with the original (CRC-32 checked)\n",
           zlibVersion(), ISAL_MAJOR_VERSION, ISAL_MINOR_VERSION, ISAL_PATCH_VERSION,
           LIBDEFLATE_VERSION_STRING, reps);
    printf("- load average at start: %s\n\n", loadavg());
    fflush(stdout);

    /* Single stream. */
    struct mode m[16];
    int nm = 0;
    for (int i = 0; i < nw; i++) {
        m[nm++] = (struct mode){"zlib", "stream", zlib_stream, 0, wins[i], 0, 0, 0};
        m[nm++] = (struct mode){"ISA-L", "stream", isal_stream, 0, wins[i], 0, 0, 0};
    }
    m[nm++] = (struct mode){"zlib", "whole buffer", zlib_whole, 1, 0, 0, 0, 0};
    m[nm++] = (struct mode){"ISA-L", "whole buffer", isal_whole, 1, 0, 0, 0, 0};
    m[nm++] = (struct mode){"libdeflate", "whole buffer", ld_whole, 1, 0, 0, 0, 0};
    for (int k = 0; k < nm; k++) {
        m[k].wall = xmalloc(reps * sizeof(double));
        m[k].cpu = xmalloc(reps * sizeof(double));
        m[k].flt = xmalloc(reps * sizeof(long));
    }
    run_modes(m, nm, reps);
    printf("## Single stream\n\n");
    printf("| library | mode | MB/s (median) | min–max MB/s | CPU s (median) | MB per CPU-s | "
           "wall s (median) | minor faults / run | verified |\n|---|---|---|---|---|---|---|---|---|\n");
    for (int k = 0; k < nm; k++) {
        double w = median(m[k].wall, reps), c = median(m[k].cpu, reps);
        double lo = m[k].wall[0], hi = m[k].wall[0];
        long fl = 0;
        for (int r = 0; r < reps; r++) {
            if (m[k].wall[r] < lo) lo = m[k].wall[r];
            if (m[k].wall[r] > hi) hi = m[k].wall[r];
            if (m[k].flt[r] > fl) fl = m[k].flt[r];
        }
        char how[64];
        if (m[k].whole)
            snprintf(how, sizeof how, "%s", m[k].how);
        else
            snprintf(how, sizeof how, "stream, %zu KiB window", m[k].win / KiB);
        printf("| %s | %s | %.0f | %.0f–%.0f | %.3f | %.0f | %.3f | %ld | yes |\n", m[k].lib, how,
               mbs(w), mbs(hi), mbs(lo), c, mbs(c), w, fl);
    }
    printf("\n- load average after the single-stream runs: %s\n\n", loadavg());
    fflush(stdout);

    if (nc) {
        printf("## SOZip-style chunks (zlib level 6, fresh raw stream per chunk, Z_FULL_FLUSH)\n\n");
        printf("| chunk | chunks | ratio | vs one stream | index (8 B/chunk) | compress MB/s (zlib -6, 1 thread) "
               "| zlib MB/s, per CPU-s | ISA-L MB/s, per CPU-s | libdeflate MB/s, per CPU-s | verified |\n"
               "|---|---|---|---|---|---|---|---|---|---|\n");
        printf("| one stream (numpy's) | 1 | %.3f:1 | 1 | – | – | – | – | – | – |\n",
               (double)g_usize / g_insize);
        fflush(stdout);
        for (int i = 0; i < nc; i++) {
            struct chunks c = make_chunks(ref, g_usize, csz[i]);
            g_ch = &c;
            struct mode cm[3] = {
                {"zlib", "chunks", zlib_chunks, 1, 0, 0, 0, 0},
                {"ISA-L", "chunks", isal_chunks, 1, 0, 0, 0, 0},
                {"libdeflate", "chunks", ld_chunks, 1, 0, 0, 0, 0},
            };
            for (int k = 0; k < 3; k++) {
                cm[k].wall = xmalloc(reps * sizeof(double));
                cm[k].cpu = xmalloc(reps * sizeof(double));
                cm[k].flt = xmalloc(reps * sizeof(long));
            }
            run_modes(cm, 3, reps);
            printf("| %zu KiB | %zu | %.3f:1 | %+.2f%% size | %.3f%% | %.1f (%.1f s CPU)",
                   c.size / KiB, c.n, (double)g_usize / c.total,
                   100.0 * ((double)c.total / g_insize - 1), 100.0 * 8 * c.n / c.total,
                   mbs(c.ctime), c.ccpu);
            for (int k = 0; k < 3; k++)
                printf(" | %.0f, %.0f", mbs(median(cm[k].wall, reps)), mbs(median(cm[k].cpu, reps)));
            printf(" | yes |\n");
            fflush(stdout);
            for (int k = 0; k < 3; k++) {
                free(cm[k].wall);
                free(cm[k].cpu);
                free(cm[k].flt);
            }
            free(c.buf);
            free(c.off);
            free(c.len);
        }
        printf("\n- load average at the end: %s\n", loadavg());
    }
    libdeflate_free_decompressor(g_ld);
    return 0;
}
