# npzfs - flat make; `make SAN=1` builds with ASan+UBSan into build-san/.
PKGS    := fuse3 libzip zlib libisal libpng
CC      ?= cc
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wmissing-prototypes \
           -D_FILE_OFFSET_BITS=64 -DFUSE_USE_VERSION=312 -Iinclude -MMD -MP \
           $(shell pkg-config --cflags $(PKGS))
LDLIBS  += $(shell pkg-config --libs $(PKGS)) -lpthread -lm
CFLAGS  += $(if $(SAN),-fsanitize=address -fsanitize=undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
LDFLAGS += $(if $(SAN),-fsanitize=address -fsanitize=undefined)
B       ?= $(if $(SAN),build-san,build)
PREFIX  ?= /usr/local
PY      := /usr/bin/python3
VERSION := 0.1.0
CFLAGS  += -DNPZFS_VERSION='"$(VERSION)"'

LIB_SRC := $(filter-out src/main.c,$(wildcard src/*.c src/*/*.c))
LIB_OBJ := $(LIB_SRC:src/%.c=$(B)/obj/%.o)
TESTS   := $(patsubst tests/unit/%.c,$(B)/%,$(wildcard tests/unit/test_*.c))
FUZZ    := $(patsubst tests/fuzz/%.c,build-fuzz/%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_SECONDS ?= 15

.PHONY: all clean test unit integration fuzz install uninstall run bench deps
all: $(B)/npzfs $(TESTS) $(B)/float_oracle

$(B)/obj/%.o: src/%.c | $(B)/obj
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c -o $@ $<
$(B)/obj/test_%.o: tests/unit/test_%.c | $(B)/obj
	$(CC) $(CFLAGS) -Itests/unit -c -o $@ $<
$(B)/libnpzfs.a: $(LIB_OBJ)
	rm -f $@ && ar rcs $@ $^
$(B)/npzfs: $(B)/obj/main.o $(B)/libnpzfs.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(B)/test_%: $(B)/obj/test_%.o $(B)/libnpzfs.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(B)/obj:
	mkdir -p $@
# Test tools (tests/oracle/): bits of the float parsers for the pytest oracle.
$(B)/obj/oracle_%.o: tests/oracle/%.c | $(B)/obj
	$(CC) $(CFLAGS) -c -o $@ $<
$(B)/float_oracle: $(B)/obj/oracle_float_oracle.o $(B)/libnpzfs.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# libFuzzer targets (clang only): the library's sources compiled once with
# the fuzzer's instrumentation into build-fuzz/libnpzfs.a, linked into each.
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -g -O1 -Iinclude -D_FILE_OFFSET_BITS=64 -DFUSE_USE_VERSION=312 \
               -MMD -MP $(shell pkg-config --cflags $(PKGS)) -fsanitize=address,undefined
FUZZ_OBJ := $(LIB_SRC:src/%.c=build-fuzz/obj/%.o)
build-fuzz/obj/%.o: src/%.c
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<
build-fuzz/libnpzfs.a: $(FUZZ_OBJ)
	rm -f $@ && ar rcs $@ $^
build-fuzz/fuzz_%: tests/fuzz/fuzz_%.c build-fuzz/libnpzfs.a
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $(filter %.c %.a,$^) $(shell pkg-config --libs $(PKGS)) -lpthread -lm

unit: $(TESTS)
	@set -e; for t in $(TESTS); do echo "== $$t"; $$t; done
	@echo "== tests/unit/test_png_pillow.py"
	PNG_TOOL=$(abspath $(B)/test_png) $(PY) -m pytest -q -p no:cacheprovider tests/unit/test_png_pillow.py

integration: $(B)/npzfs $(B)/float_oracle
	NPZFS_BIN=$(abspath $(B)/npzfs) $(PY) -m pytest -q tests/integration

fuzz: $(FUZZ)
	@set -e; for f in $(FUZZ); do n=$$(basename $$f); mkdir -p build-fuzz/corpus-$$n; \
	  echo "== $$n for $(FUZZ_SECONDS)s"; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=0 build-fuzz/corpus-$$n tests/fuzz/corpus/$$n 2>build-fuzz/$$n.log \
	    || { tail -50 build-fuzz/$$n.log; exit 1; }; tail -1 build-fuzz/$$n.log; done

# The whole suite: unit + integration, normal and sanitized, then the fuzzers.
test:
	$(MAKE) unit
	$(MAKE) SAN=1 unit
	$(MAKE) integration
	$(MAKE) SAN=1 integration
	$(MAKE) fuzz

deps:
	scripts/install-deps

run: deps
	$(MAKE) all
	scripts/run

bench: $(B)/npzfs
	scripts/bench

# mount(8) finds npzfs for `-t fuse.npzfs` and fstab only in /bin/sh's
# default PATH (/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin):
# under another PREFIX, see README "Mounting like any filesystem".
install: $(B)/npzfs
	install -D -m 0755 $(B)/npzfs $(DESTDIR)$(PREFIX)/bin/npzfs
	install -D -m 0644 npzfs.1 $(DESTDIR)$(PREFIX)/share/man/man1/npzfs.1

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/npzfs $(DESTDIR)$(PREFIX)/share/man/man1/npzfs.1

clean:
	rm -rf build build-san build-fuzz

-include $(wildcard build/obj/*.d build/obj/*/*.d build-san/obj/*.d build-san/obj/*/*.d \
                   build-fuzz/obj/*.d build-fuzz/obj/*/*.d build-fuzz/*.d)
