# tl — top-level build. `make` builds build/tlc; `make test` runs every test; `make demo`
# runs the flagship example. Generated C (re2c, Bison) goes to build/, never to the tree.

ifeq ($(origin CC),default)
CC := gcc
endif
BUILD  ?= build
OPT    ?= -O2
CFLAGS := -std=c11 -g $(OPT) -Wall -Wextra -Werror -D_GNU_SOURCE -MMD -MP \
          -Idsl -Icompiler -Iruntime -Itargets -I$(BUILD)/gen $(EXTRA_CFLAGS)
LDLIBS := -lcjson -lpcre2-8 -lutf8proc -lm -lpthread $(EXTRA_LDLIBS)

RE2C   ?= re2c
BISON  ?= bison

# Generated front end
GEN_LEXER  := $(BUILD)/gen/lexer.c
GEN_PARSER := $(BUILD)/gen/parser.c
GEN_PARSER_H := $(BUILD)/gen/parser.h

# Sources: every .c in these directories is part of the compiler library, except the
# entry point compiler/main.c. New modules need no Makefile change.
LIB_SRC := $(wildcard dsl/*.c) $(filter-out compiler/main.c,$(wildcard compiler/*.c))
RT_SRC  := $(wildcard runtime/*.c)

LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/gen/lexer.o $(BUILD)/obj/gen/parser.o

# The LLVM CPU back end (targets/cpu/*.c) joins the compiler library; only its objects get
# llvm-config's flags, and only tlc and the test programs link LLVM (never libtlrt.a).
LLVM_CONFIG ?= llvm-config-19
CPU_SRC := $(wildcard targets/cpu/*.c)
CPU_OBJ := $(CPU_SRC:%.c=$(BUILD)/obj/%.o)
LIB_OBJ += $(CPU_OBJ)
$(CPU_OBJ): CFLAGS += $(shell $(LLVM_CONFIG) --cflags)
# The NVPTX back end (targets/nvptx/*.c) likewise; runtime/cuda.c dlopens the driver.
NVPTX_SRC := $(wildcard targets/nvptx/*.c)
NVPTX_OBJ := $(NVPTX_SRC:%.c=$(BUILD)/obj/%.o)
LIB_OBJ += $(NVPTX_OBJ)
$(NVPTX_OBJ): CFLAGS += $(shell $(LLVM_CONFIG) --cflags)
LLVM_LDLIBS := $(shell $(LLVM_CONFIG) --ldflags --libs core orcjit native passes nvptx linker bitreader 2>/dev/null)
RT_OBJ  := $(RT_SRC:%.c=$(BUILD)/obj/%.o)

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all deps test test-long test-asan demo bench bench-bin clean fuzz
all: $(BUILD)/tlc

deps:
	@bash scripts/deps.sh

$(BUILD)/gen/lexer.c: dsl/lexer.re $(GEN_PARSER_H)
	@mkdir -p $(dir $@)
	$(RE2C) -W -Werror --utf8 -o $@ $<

$(BUILD)/gen/parser.c $(BUILD)/gen/parser.h &: dsl/parser.y
	@mkdir -p $(BUILD)/gen
	$(BISON) -Wall -Werror --defines=$(BUILD)/gen/parser.h -o $(BUILD)/gen/parser.c $<

$(BUILD)/obj/gen/%.o: $(BUILD)/gen/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Wno-unused-function -c -o $@ $<

$(BUILD)/obj/%.o: %.c | $(GEN_PARSER_H)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/libtlc.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libtlrt.a: $(RT_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/tlc: $(BUILD)/obj/compiler/main.o $(BUILD)/libtlc.a $(BUILD)/libtlrt.a
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS) $(LLVM_LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libtlc.a $(BUILD)/libtlrt.a tests/unit/check.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/unit -o $@ $< $(BUILD)/libtlc.a $(BUILD)/libtlrt.a $(LDLIBS) $(LLVM_LDLIBS)

# test_nvptx_emu retargets the NVPTX back end's LLVM IR itself (LLVM C API headers)
$(BUILD)/tests/test_nvptx_emu: CFLAGS += $(shell $(LLVM_CONFIG) --cflags)

units: $(UNIT_BIN)

test: deps
	@$(MAKE) --no-print-directory all units
	@bash tests/run.sh

# The whole suite again with AddressSanitizer, UndefinedBehaviorSanitizer and
# LeakSanitizer, in a build directory of its own.
test-asan: deps
	@$(MAKE) --no-print-directory BUILD=build-asan CC=clang-19 OPT="-O1 -fno-omit-frame-pointer" \
	    EXTRA_CFLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined" \
	    EXTRA_LDLIBS="-fsanitize=address,undefined" all units
	@BUILD=build-asan TL_FUZZ_SKIP=1 CC="clang-19 -fsanitize=address,undefined" bash tests/run.sh

test-long: deps
	@$(MAKE) --no-print-directory all units
	@TL_TEST_LONG=1 bash tests/run.sh

demo: deps
	@$(MAKE) --no-print-directory all
	@bash scripts/demo.sh

clean:
	rm -rf $(BUILD)

# ---- benchmarks (make bench; never part of make test): bench/run.sh, bench/README.md ----
# OpenBLAS is the yardstick only (bench/gemm links it; tl programs never do).
$(BUILD)/bench/peak: bench/peak.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -O2 -Wall -Wextra -Werror -D_GNU_SOURCE -o $@ $< -lpthread

$(BUILD)/bench/gemm: bench/gemm.c $(BUILD)/libtlc.a $(BUILD)/libtlrt.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libtlc.a $(BUILD)/libtlrt.a $(LDLIBS) $(LLVM_LDLIBS) -lopenblas

bench-bin: $(BUILD)/bench/peak $(BUILD)/bench/gemm

bench: deps
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) bash bench/all.sh

# ---- fuzzing (tests/fuzz/suite.sh): libFuzzer over the front end --------------------
# Everything is rebuilt with clang and sanitizers into $(BUILD)/fuzz/obj. Sema is fuzzed
# too once compiler/sema.c exists (FUZZ_SEMA=0 forces lex + parse only).
FUZZ_CC   ?= clang-19
FUZZ_DIR  := $(BUILD)/fuzz
FUZZ_SEMA ?= $(if $(wildcard compiler/sema.c),1,0)
FUZZ_CFLAGS := -std=c11 -g -O1 -D_GNU_SOURCE -Idsl -Icompiler -Iruntime -Itargets -I$(BUILD)/gen \
          -DTL_FUZZ_SEMA=$(FUZZ_SEMA) -DTL_FUZZ_STDLIB='"$(CURDIR)/stdlib"' \
          -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
# only the front end: lex, parse and sema (the back ends are tested differentially)
FUZZ_SRC  := $(wildcard dsl/*.c) compiler/arena.c compiler/dtype.c \
             $(if $(filter 1,$(FUZZ_SEMA)),compiler/dims.c compiler/types.c $(wildcard compiler/sema*.c))
FUZZ_OBJ  := $(FUZZ_SRC:%.c=$(FUZZ_DIR)/obj/%.o) $(FUZZ_DIR)/obj/gen/lexer.o \
             $(FUZZ_DIR)/obj/gen/parser.o

fuzz: $(FUZZ_DIR)/fuzz_frontend

$(FUZZ_DIR)/obj/gen/%.o: $(BUILD)/gen/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -Wno-unused-function -c -o $@ $<

$(FUZZ_DIR)/obj/%.o: %.c $(GEN_PARSER_H)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<

$(FUZZ_DIR)/fuzz_frontend: tests/fuzz/fuzz_frontend.c $(FUZZ_OBJ) $(GEN_PARSER_H)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ tests/fuzz/fuzz_frontend.c $(FUZZ_OBJ) \
	    $(if $(filter 1,$(FUZZ_SEMA)),$(LDLIBS),-lm)

-include $(shell find $(BUILD)/obj $(BUILD)/tests -name '*.d' 2>/dev/null)
