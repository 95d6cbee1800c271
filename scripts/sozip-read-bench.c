/* sozip-read-bench.c - MB/s of ar_sozip_read over member 0 of a SOZip
 * archive, reads of KIB KiB in order, serial then through the chunk pool.
 * Build (after make): cc -O2 -std=c11 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64
 *   -Iinclude -I/usr/include/fuse3 scripts/sozip-read-bench.c build/libnpzfs.a
 *   $(pkg-config --libs fuse3 libzip zlib libisal) -lpthread -lm -o /tmp/srb
 * Run: /tmp/srb ARCHIVE KIB */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "../src/zip/zip_internal.h"
static double now(void){struct timespec t; clock_gettime(CLOCK_MONOTONIC,&t); return t.tv_sec+t.tv_nsec/1e9;}
int main(int argc, char **argv){
 if (argc != 3) { fprintf(stderr, "usage: %s ARCHIVE KIB\n", argv[0]); return 2; }
 struct archive *a; struct npz_err err={""}; size_t bs=(size_t)atol(argv[2])<<10;
 if (archive_open(argv[1], &a, &err)) { printf("open: %s\n", err.msg); return 1; }
 unsigned char *buf = malloc(bs); uint64_t size = a->m[0].pub.size;
 for (int par = 0; par < 2; par++) for (int r = 0; r < 3; r++) {
  ar_sozip_set_parallel(par); double t = now();
  for (uint64_t off = 0; off < size; off += bs) { size_t n = size - off < bs ? size - off : bs;
   int ret = ar_sozip_read(a, &a->m[0], buf, n, off, &err); if (ret) { printf("ret %d %s\n", ret, err.msg); return 1; } }
  t = now() - t; printf("%s %zu KiB reads: %.0f MB/s\n", par ? "pool  " : "serial", bs >> 10, size / t / 1e6); }
 archive_close(a); return 0; }
