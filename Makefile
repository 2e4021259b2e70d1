# hoop: build, test and demo. `make` builds build/hoopd, build/hoopctl and the BPF object.
#   make V=1                       show every command
#   make SANITIZE=address,undefined  build with sanitizers into build/san/
#   make deps                      install missing Debian packages (idempotent, silent if none)
#   make test                      install, build, run every test (as root)
#   make unit                      build and run the unit tests (with SANITIZE= too)
#   make check-includes            no include cycle between modules (tests/check_includes.py)
#   make unit-maskplan             masking provenance cases (tests/unit/maskplan/)
#   make unit-sqlshape             statement shapes: same shape, same facts and plan
#   make unit-mask                 the masking unit tests (with SANITIZE= too)
#   make unit-events               the session records over a real audit trail (SANITIZE= too)
#   make unit-audit-ipc            workers' records through the broker into one chain (SANITIZE= too)
#   make unit-sandbox              the engine worker's sandbox, as root (SANITIZE= too)
#   make bench-mask                masking throughput: MB/s per core and instructions per byte
#   make fuzz FUZZ_SECONDS=20      run each libFuzzer target that long (clang, ASan+UBSan)
#   make demo                      install, build, show an agent going through hoop (as root)
#   make vmtest                    the BPF end-to-end suite in a VM on Linux 6.1 (as root)
#   make image                     the node image (deploy/Dockerfile) with docker, podman or buildah

OUT := build
ifneq ($(SANITIZE),)
OUT := build/san
# HOOP_SANITIZE: the worker's sandbox lets a sanitizer's report through (kernel/sandbox.h).
SAN_FLAGS := -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all -DHOOP_SANITIZE
endif

CC ?= gcc
CLANG ?= clang
BPFTOOL ?= bpftool
ARCH := $(shell uname -m | sed 's/x86_64/x86/;s/aarch64/arm64/')
MULTIARCH := $(shell $(CC) -print-multiarch 2>/dev/null)

CFLAGS ?= -O2 -g
# hoopd's modules are the folders under user/hoopd/ (docs/architecture.md): every folder that
# holds sources is one, gets one -I, and is compiled whole, so moving or adding a file needs no
# edit here. Sources say #include "name.h", never a path.
HOOPD_DIRS := $(sort $(patsubst %/,%,$(dir $(wildcard user/hoopd/*.[ch] user/hoopd/*/*.[ch] \
		user/hoopd/*/*/*.[ch]))))
HOOPD_INC := $(addprefix -I,$(HOOPD_DIRS))

CFLAGS += -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter -Wno-format-truncation -D_GNU_SOURCE \
	  -Iinclude -Iuser/common $(HOOPD_INC) -I$(OUT) $(SAN_FLAGS)
LDFLAGS += $(SAN_FLAGS)
LDLIBS := -lbpf -lelf -lz -ldeflate -lyaml -ljson-c -lpg_query -lpq -lhs -lssl -lcrypto -lseccomp -lpthread $(shell pkg-config --libs libnl-3.0 2>/dev/null || echo -lnl-3)
CFLAGS += $(shell pkg-config --cflags libnl-3.0 2>/dev/null || echo -I/usr/include/libnl3)
CFLAGS += -I$(shell pg_config --includedir 2>/dev/null || echo /usr/include/postgresql)

BPF_CFLAGS := -g -O2 -target bpf -D__TARGET_ARCH_$(ARCH) -Iinclude -Ibpf \
	      -idirafter /usr/include/$(MULTIARCH) -Wall -Werror

ifeq ($(V),1)
Q :=
msg :=
else
Q := @
msg = @printf '  %-8s %s\n' "$(1)" "$(2)";
endif

# libhoop.a: what hoopd and hoopctl share, so that `hoopctl policy check|test` loads, judges
# and plans with hoopd's own code (the policy loader, rules, the verdict, SQL facts, masking
# plans and the catalog model). It is made of whole module folders (LIB_DIRS); a binary takes
# from it only the objects it calls.
LIB_DIRS := user/hoopd/sql user/hoopd/policy user/hoopd/mask
LIB_SRC := $(wildcard $(addsuffix /*.c,$(LIB_DIRS)))

COMMON_SRC := $(wildcard user/common/*.c)
HOOPD_SRC := $(filter-out $(LIB_SRC),$(wildcard $(addsuffix /*.c,$(HOOPD_DIRS))))
HOOPCTL_SRC := $(wildcard user/hoopctl/*.c)
COMMON_OBJ := $(patsubst user/%.c,$(OUT)/obj/%.o,$(COMMON_SRC))
HOOPD_OBJ := $(patsubst user/%.c,$(OUT)/obj/%.o,$(HOOPD_SRC))
HOOPCTL_OBJ := $(patsubst user/%.c,$(OUT)/obj/%.o,$(HOOPCTL_SRC))
LIB_OBJ := $(patsubst user/%.c,$(OUT)/obj/%.o,$(LIB_SRC))
LIB := $(OUT)/libhoop.a
HEADERS := $(wildcard include/*.h user/common/*.h user/hoopctl/*.h $(addsuffix /*.h,$(HOOPD_DIRS)))

.PHONY: all deps test test-unit test-e2e unit unit-pg unit-gate unit-mask fuzz demo clean fmt
.DELETE_ON_ERROR:
.SECONDARY:

all: $(OUT)/hoopd $(OUT)/hoopctl $(OUT)/hoop.bpf.o

deps:
	$(Q)scripts/deps.sh all

# Modules (folders) include each other's headers in one direction only: the script prints a
# cycle with the includes that make it, and "includes: N passed, M failed".
.PHONY: check-includes
check-includes:
	$(Q)/usr/bin/python3 tests/check_includes.py --self-test >/dev/null || \
		/usr/bin/python3 tests/check_includes.py --self-test
	$(Q)/usr/bin/python3 tests/check_includes.py

$(OUT)/hoop.bpf.o: bpf/hoop.bpf.c $(wildcard bpf/lib/*.h) include/hoop_bpf.h | $(OUT)
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(OUT)/hoop.skel.h: $(OUT)/hoop.bpf.o
	$(call msg,GEN-SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< name hoop_bpf > $@

$(OUT)/obj/%.o: user/%.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

# Only the BPF loader includes the generated skeleton.
$(filter %/bpfctl.o,$(HOOPD_OBJ)): $(OUT)/hoop.skel.h

# Remade when the Makefile changes too: that is where its list of objects can change.
$(LIB): $(LIB_OBJ) Makefile
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $(LIB_OBJ)

$(OUT)/hoopd: $(HOOPD_OBJ) $(COMMON_OBJ) $(LIB)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(OUT)/hoopctl: $(HOOPCTL_OBJ) $(COMMON_OBJ) $(LIB)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(OUT):
	@mkdir -p $@

# The SQL dialect (dialect.h: PostgreSQL's, dialect_pg.c) and the modules it is made of: what
# hoopd, hoopctl and the unit tests split, judge and plan statements with.
DIALECT_SRC := user/hoopd/sql/dialect_pg.c user/hoopd/sql/sqlfacts.c user/hoopd/mask/maskplan.c \
	       user/hoopd/mask/maskplan_scope.c user/hoopd/mask/maskplan_expr.c user/hoopd/mask/maskplan_stmt.c \
	       user/hoopd/mask/catalog.c user/hoopd/sql/sqlshape.c user/hoopd/sql/sqlsize.c user/hoopd/sql/grantkey.c

# Unit tests (tests/unit/): built straight from the sources they test, so they need neither the
# BPF toolchain nor the skeleton. Cases for the policy loader are files in tests/unit/policy/.
UNIT_SRC := user/hoopd/policy/policy.c user/hoopd/policy/policy_yaml.c user/hoopd/sql/sqlfacts.c user/common/json.c

$(OUT)/unit/test_policy: tests/unit/test_policy.c tests/unit/harness.h $(UNIT_SRC) $(HEADERS)
	@mkdir -p $(dir $@)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -Iuser/hoopd $(LDFLAGS) $< $(UNIT_SRC) -lyaml -ljson-c -lpg_query -lhs -o $@

$(OUT)/unit/test_sqlsize: tests/unit/test_sqlsize.c tests/unit/harness.h user/hoopd/sql/sqlsize.c \
			 user/hoopd/sql/sqlsize.h
	@mkdir -p $(dir $@)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -Iuser/hoopd $(LDFLAGS) $< user/hoopd/sql/sqlsize.c -o $@

# What a fingerprint grant is keyed on, and which statements get no key (grantkey.h).
$(OUT)/unit/test_grantkey: tests/unit/test_grantkey.c tests/unit/harness.h user/hoopd/sql/grantkey.c \
			  user/hoopd/sql/sqlfacts.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -Iuser/hoopd $(LDFLAGS) $< user/hoopd/sql/grantkey.c user/hoopd/sql/sqlfacts.c \
		-ljson-c -lpg_query -lcrypto -o $@

# The SQL dialect (dialect.h): splitting, lexing under the session's settings, and grammar
# errors as a real PostgreSQL 15 words them (tests/unit/sqlerror.cases, recorded from one by
# tests/unit/sqlerror_record.py).
$(OUT)/unit/test_dialect: tests/unit/test_dialect.c tests/unit/harness.h $(DIALECT_SRC) $(HEADERS)
	@mkdir -p $(dir $@)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -Iuser/hoopd $(LDFLAGS) $< $(DIALECT_SRC) -ljson-c -lpg_query -lcrypto -o $@

# The audit trail's format (trail.h): names, chain, checkpoint MAC, key, line reader; and the
# records' timestamp (isotime.h).
TRAIL_UNIT_SRC := user/common/trail.c user/common/isotime.c

$(OUT)/unit/test_trail: tests/unit/test_trail.c tests/unit/harness.h $(TRAIL_UNIT_SRC) $(HEADERS)
	@mkdir -p $(dir $@)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) $< $(TRAIL_UNIT_SRC) -lssl -lcrypto -lz -o $@

# Messages with descriptors over a Unix socket (fdpass.h): the broker's hand-off to workers.
$(OUT)/unit/test_fdpass: tests/unit/test_fdpass.c tests/unit/harness.h user/common/fdpass.c \
			 $(HEADERS)
	@mkdir -p $(dir $@)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) $< user/common/fdpass.c -o $@

# The MySQL/MariaDB dialect's parts: lexer, classifier (and sqlfacts.c for the kinds' names).
MYSQL_SQL_SRC := user/hoopd/sql/mysqllex.c user/hoopd/sql/mysqlclass.c user/hoopd/sql/sqlfacts.c \
		 user/hoopd/sql/dialect_mysql.c

# The classifier as a line tool, for the differential tests against MariaDB (tests/mysql/).
$(OUT)/tools/mysqlfacts: tests/mysql/mysqlfacts.c $(MYSQL_SQL_SRC) $(HEADERS)
	@mkdir -p $(dir $@)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -Iuser/hoopd/sql $(LDFLAGS) $< $(MYSQL_SQL_SRC) -ljson-c -lpg_query -o $@

# The MySQL/MariaDB classifier (sql/mysqlclass.h): facts, the split, and its refusals.
$(OUT)/unit/test_mysqlclass: tests/unit/test_mysqlclass.c tests/unit/harness.h $(MYSQL_SQL_SRC) \
			     $(HEADERS)
	@mkdir -p $(dir $@)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -Iuser/hoopd/sql $(LDFLAGS) $< $(MYSQL_SQL_SRC) -ljson-c -lpg_query -o $@

# The MySQL/MariaDB lexer (sql/mysqllex.h): tokens as the server cuts them, under each setting.
$(OUT)/unit/test_mysqllex: tests/unit/test_mysqllex.c tests/unit/harness.h user/hoopd/sql/mysqllex.c \
			   user/hoopd/sql/mysqllex.h
	@mkdir -p $(dir $@)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -Iuser/hoopd/sql $(LDFLAGS) $< user/hoopd/sql/mysqllex.c -o $@

# One summary line for all (tests/run.sh reads the last "unit: N passed, M failed").
unit: $(OUT)/unit/test_policy $(OUT)/unit/test_sqlsize $(OUT)/unit/test_grantkey \
      $(OUT)/unit/test_dialect $(OUT)/unit/test_trail $(OUT)/unit/test_fdpass \
      $(OUT)/unit/test_mysqllex $(OUT)/unit/test_mysqlclass
	$(Q)$(OUT)/unit/test_dialect tests/unit/sqlerror.cases >$(OUT)/unit/test_dialect.log 2>&1 || \
		{ cat $(OUT)/unit/test_dialect.log; echo "unit: 0 passed, 1 failed"; exit 1; }
	$(Q)rm -rf $(OUT)/unit/trail-scratch
	$(Q)$(OUT)/unit/test_trail $(OUT)/unit/trail-scratch >$(OUT)/unit/test_trail.log 2>&1 || \
		{ cat $(OUT)/unit/test_trail.log; echo "unit: 0 passed, 1 failed"; exit 1; }
	$(Q)$(OUT)/unit/test_sqlsize >/dev/null 2>$(OUT)/unit/test_sqlsize.log || \
		{ cat $(OUT)/unit/test_sqlsize.log; echo "unit: 0 passed, 1 failed"; exit 1; }
	$(Q)$(OUT)/unit/test_grantkey >$(OUT)/unit/test_grantkey.log 2>&1 || \
		{ cat $(OUT)/unit/test_grantkey.log; echo "unit: 0 passed, 1 failed"; exit 1; }
	$(Q)$(OUT)/unit/test_fdpass >$(OUT)/unit/test_fdpass.log 2>&1 || \
		{ cat $(OUT)/unit/test_fdpass.log; echo "unit: 0 passed, 1 failed"; exit 1; }
	$(Q)$(OUT)/unit/test_mysqllex >$(OUT)/unit/test_mysqllex.log 2>&1 || \
		{ cat $(OUT)/unit/test_mysqllex.log; echo "unit: 0 passed, 1 failed"; exit 1; }
	$(Q)$(OUT)/unit/test_mysqlclass >$(OUT)/unit/test_mysqlclass.log 2>&1 || \
		{ cat $(OUT)/unit/test_mysqlclass.log; echo "unit: 0 passed, 1 failed"; exit 1; }
	$(Q)$< tests/unit/policy

# The engine worker's sandbox (kernel/sandbox.c), as root: forbidden calls kill a sandboxed
# child, a worker's real work runs, /proc/PID/status shows no privilege.
$(OUT)/unit/test_sandbox: tests/unit/test_sandbox.c tests/unit/harness.h user/hoopd/kernel/sandbox.c \
			 user/hoopd/kernel/sandbox.h
	@mkdir -p $(dir $@)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) $< user/hoopd/kernel/sandbox.c -lseccomp -lpthread -o $@

.PHONY: unit-sandbox
unit-sandbox: $(OUT)/unit/test_sandbox
	$(Q)$<

# The session records (events.c) over a real audit trail: "who" once per session and segment.
AUDIT_SRC := user/hoopd/audit/audit_store.c user/hoopd/audit/audit_compress.c user/hoopd/audit/audit_sync.c \
	     user/common/trail.c user/hoopd/audit/audit_remote.c user/hoopd/core/loop.c
EVENTS_UNIT_SRC := user/hoopd/audit/record.c $(AUDIT_SRC) user/common/isotime.c user/common/json.c \
		   user/common/log.c

$(OUT)/unit/test_events: tests/unit/test_events.c tests/unit/harness.h $(EVENTS_UNIT_SRC) $(HEADERS)
	@mkdir -p $(dir $@)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -Iuser/hoopd $(LDFLAGS) $< $(EVENTS_UNIT_SRC) -ljson-c -lssl -lcrypto -lz \
		-ldeflate -lpthread -o $@

.PHONY: unit-events
unit-events: $(OUT)/unit/test_events
	$(Q)rm -rf $(OUT)/unit/events-state && $< $(OUT)/unit/events-state

# The audit channel: a broker process with the real store serves forked workers; hoopctl verify
# reads the one chain they wrote.
AUDIT_IPC_UNIT_SRC := $(AUDIT_SRC) user/hoopd/audit/audit_serve.c user/common/isotime.c \
		      user/common/json.c user/common/log.c

$(OUT)/unit/test_audit_ipc: tests/unit/test_audit_ipc.c tests/unit/harness.h $(AUDIT_IPC_UNIT_SRC) \
			    $(HEADERS)
	@mkdir -p $(dir $@)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -Iuser/hoopd $(LDFLAGS) $< $(AUDIT_IPC_UNIT_SRC) -ljson-c -lssl -lcrypto \
		-lz -ldeflate -lpthread -o $@

.PHONY: unit-audit-ipc
unit-audit-ipc: $(OUT)/unit/test_audit_ipc $(OUT)/hoopctl
	$(Q)rm -rf $(OUT)/unit/audit-ipc-state && $< $(OUT)/unit/audit-ipc-state $(OUT)/hoopctl

# The PostgreSQL engine's mechanics, with a test verdict callback and the relay stubbed out.
PG_UNIT_SRC := user/hoopd/engines/pg/pg.c $(wildcard user/hoopd/engines/pg/pg_*.c) \
	       user/hoopd/gate/gate.c user/hoopd/engines/pg/pgwire.c user/hoopd/audit/record.c \
	       $(AUDIT_SRC) \
	       user/common/isotime.c \
	       user/common/buf.c $(wildcard user/hoopd/mask/mask*.c) user/hoopd/engines/pg/pgrow.c \
	       user/hoopd/mask/catalog.c \
	       user/hoopd/sql/sqlshape.c user/hoopd/sql/sqlsize.c user/hoopd/gate/stmtcache.c user/common/json.c \
	       user/common/log.c user/hoopd/engines/pg/pgerrcodes.c user/hoopd/sql/sqlfacts.c \
	       user/hoopd/sql/dialect_pg.c user/hoopd/sql/grantkey.c

$(OUT)/unit/test_pg: tests/unit/test_pg.c tests/unit/harness.h $(PG_UNIT_SRC) $(HEADERS) \
		     $(wildcard user/hoopd/*/*.h user/hoopd/*/*/*.h)
	@mkdir -p $(dir $@)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -Iuser/hoopd $(LDFLAGS) $< $(PG_UNIT_SRC) -lpg_query -ljson-c -lhs -lssl -lcrypto -lz -ldeflate -o $@

unit-pg: $(OUT)/unit/test_pg
	$(Q)rm -rf $(OUT)/unit/pg-state && $< $(OUT)/unit/pg-state

# The statement gate, driven by the smallest engine there is (tests/unit/fake_engine.c: what a
# new protocol must implement); the verdict, the trail and masking are the test's stand-ins.
GATE_UNIT_SRC := user/hoopd/gate/gate.c user/hoopd/gate/stmtcache.c user/hoopd/sql/sqlshape.c \
		 user/common/buf.c user/common/json.c tests/unit/fake_engine.c

$(OUT)/unit/test_gate: tests/unit/test_gate.c tests/unit/harness.h $(GATE_UNIT_SRC) $(HEADERS)
	@mkdir -p $(dir $@)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -Iuser/hoopd $(LDFLAGS) $< $(GATE_UNIT_SRC) -lpg_query -o $@

.PHONY: unit-gate
unit-gate: $(OUT)/unit/test_gate
	$(Q)$<

# Policy rules on PostgreSQL's parse tree, case by case: each tests/unit/rules/*.cases file is
# judged against its policy (the default policy, and a small one for when, default and
# precedence) with the same split, facts and rules as hoopd.
RULES_UNIT_SRC := user/hoopd/policy/policy.c user/hoopd/policy/policy_yaml.c user/hoopd/policy/rules.c \
		  user/common/json.c $(DIALECT_SRC)

$(OUT)/unit/test_rules: tests/unit/test_rules.c tests/unit/harness.h $(RULES_UNIT_SRC) $(HEADERS)
	@mkdir -p $(dir $@)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -Iuser/hoopd $(LDFLAGS) $< $(RULES_UNIT_SRC) -lyaml -ljson-c -lpg_query -lhs \
		-lcrypto -o $@

# Each cases file with the policy it is written for.
RULES_CASES := policies/hipaa-agents.yaml tests/unit/rules/hipaa.cases \
	       tests/unit/rules/custom.yaml tests/unit/rules/custom.cases

# `hoopctl policy test` and hoopd's verdict point give every case of every cases file the same
# verdict, rule and message (with the policy's approvers, and without).
VERDICT_UNIT_SRC := $(RULES_UNIT_SRC) user/hoopd/gate/verdict.c user/hoopd/policy/judge.c \
		    user/hoopd/gate/grants.c user/hoopctl/policy.c user/hoopctl/disp.c \
		    user/hoopd/sql/mysqllex.c user/hoopd/sql/mysqlclass.c user/hoopd/sql/dialect_mysql.c

$(OUT)/unit/test_verdict: tests/unit/test_verdict.c tests/unit/test_rules.c tests/unit/harness.h \
			  $(VERDICT_UNIT_SRC) $(HEADERS)
	@mkdir -p $(dir $@)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -Iuser/hoopd -Iuser/hoopctl -Itests/unit $(LDFLAGS) $< \
		$(VERDICT_UNIT_SRC) -lyaml -ljson-c -lpg_query -lhs -lssl -lcrypto -o $@

.PHONY: unit-rules
unit-rules: $(OUT)/unit/test_rules $(OUT)/unit/test_verdict
	$(Q)for f in tests/unit/rules/*.cases; do \
		case " $(RULES_CASES) " in *" $$f "*) ;; \
		*) echo "$$f is not in RULES_CASES (Makefile): name its policy" >&2; exit 1;; esac; \
	done
	$(Q)$< $(RULES_CASES)
	$(Q)$(OUT)/unit/test_verdict $(RULES_CASES)

# Masking provenance on PostgreSQL's parse tree, case by case: each tests/unit/maskplan/*.cases
# file is planned against the fixed catalog and masking policy of tests/unit/maskplan_fixture.h.
MASKPLAN_SRC := user/hoopd/mask/maskplan.c user/hoopd/mask/maskplan_scope.c user/hoopd/mask/maskplan_expr.c \
		user/hoopd/mask/maskplan_stmt.c
MASKPLAN_UNIT_SRC := $(MASKPLAN_SRC) user/hoopd/mask/catalog.c

$(OUT)/unit/test_maskplan: tests/unit/test_maskplan.c tests/unit/harness.h \
			   tests/unit/maskplan_fixture.h $(MASKPLAN_UNIT_SRC) $(HEADERS)
	@mkdir -p $(dir $@)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -Iuser/hoopd $(LDFLAGS) $< $(MASKPLAN_UNIT_SRC) -lpg_query -o $@

.PHONY: unit-maskplan
unit-maskplan: $(OUT)/unit/test_maskplan
	$(Q)$< $(sort $(wildcard tests/unit/maskplan/*.cases))

# Statement shapes (stmtcache's key): same shape, same facts and plan, over every SQL corpus.
SQLSHAPE_UNIT_SRC := user/hoopd/sql/sqlshape.c user/hoopd/sql/sqlfacts.c $(MASKPLAN_UNIT_SRC)
SQLSHAPE_CORPORA := $(sort $(wildcard tests/unit/rules/*.cases tests/unit/maskplan/*.cases \
		      tests/e2e/masking/*.sql))

$(OUT)/unit/test_sqlshape: tests/unit/test_sqlshape.c tests/unit/harness.h tests/unit/sqlshape_check.h \
			   tests/unit/maskplan_fixture.h $(SQLSHAPE_UNIT_SRC) $(HEADERS)
	@mkdir -p $(dir $@)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -Iuser/hoopd -Iuser/common $(LDFLAGS) $< $(SQLSHAPE_UNIT_SRC) -lpg_query -o $@

.PHONY: unit-sqlshape
unit-sqlshape: $(OUT)/unit/test_sqlshape
	$(Q)$< $(SQLSHAPE_CORPORA)

# Masking of result values (user/hoopd/mask/mask*.c), with its value and detector cases in
# tests/unit/mask/*.cases.
MASK_SRC := user/hoopd/mask/mask.c user/hoopd/mask/mask_value.c user/hoopd/mask/mask_num.c user/hoopd/mask/mask_time.c \
	    user/hoopd/mask/mask_array.c user/hoopd/mask/mask_detect.c user/hoopd/mask/mask_cells.c \
	    user/hoopd/engines/pg/pgrow.c
MASK_UNIT_SRC := $(MASK_SRC) user/common/buf.c user/common/json.c

$(OUT)/unit/test_mask: tests/unit/test_mask.c tests/unit/harness.h $(MASK_UNIT_SRC) $(HEADERS)
	@mkdir -p $(dir $@)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -Iuser/hoopd $(LDFLAGS) $< $(MASK_UNIT_SRC) -lhs -ljson-c -lssl -lcrypto \
		-lm -o $@

# The row codec interface (rowcodec.h) through a MySQL-style test codec and PostgreSQL's.
$(OUT)/unit/test_rowcodec: tests/unit/test_rowcodec.c tests/unit/harness.h $(MASK_UNIT_SRC) \
			   $(HEADERS)
	@mkdir -p $(dir $@)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -Iuser/hoopd $(LDFLAGS) $< $(MASK_UNIT_SRC) -lhs -ljson-c -lssl -lcrypto \
		-lm -o $@

# MySQL's row codecs and column definitions (engines/mysql/myrow.c), over MariaDB's bytes.
$(OUT)/unit/test_myrow: tests/unit/test_myrow.c tests/unit/harness.h $(MASK_UNIT_SRC) \
			user/hoopd/engines/mysql/myrow.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -Iuser/hoopd $(LDFLAGS) $< $(MASK_UNIT_SRC) user/hoopd/engines/mysql/myrow.c \
		-lhs -ljson-c -lssl -lcrypto -lm -o $@

# One summary line (tests/run.sh reads the last): the codec tests must pass first.
.PHONY: unit-mask
unit-mask: $(OUT)/unit/test_mask $(OUT)/unit/test_rowcodec $(OUT)/unit/test_myrow
	$(Q)$(OUT)/unit/test_rowcodec >$(OUT)/unit/test_rowcodec.log 2>&1 || \
		{ cat $(OUT)/unit/test_rowcodec.log; echo "unit: 0 passed, 1 failed"; exit 1; }
	$(Q)$(OUT)/unit/test_myrow >$(OUT)/unit/test_myrow.log 2>&1 || \
		{ cat $(OUT)/unit/test_myrow.log; echo "unit: 0 passed, 1 failed"; exit 1; }
	$(Q)$< tests/unit/mask

# libFuzzer targets (fuzz/): always clang with ASan+UBSan into build/fuzz, whatever SANITIZE says.
# `make fuzz` runs each over a copy of its seed corpus (fuzz/corpus/NAME/) in build/fuzz, so
# inputs the fuzzer finds stay out of the repo; a crash leaves build/fuzz/crash-* (policy) or
# build/fuzz/NAME-crash-* and fails make. FUZZ_KNOWN_BUGS=1 steers around fixed bugs (fuzz/pg_fuzz.h).
FUZZ_SECONDS ?= 20
FUZZ_KNOWN_BUGS ?= 0
FUZZ_OUT := build/fuzz
FUZZ_CFLAGS := -g -O1 -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter -D_GNU_SOURCE \
	       -Iinclude -Iuser/common $(HOOPD_INC) \
	       -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer

# Masking provenance over any SQL text, with the unit test's catalog and policy.
$(FUZZ_OUT)/fuzz_maskplan: fuzz/fuzz_maskplan.c fuzz/fuzz_require.h tests/unit/maskplan_fixture.h $(MASKPLAN_UNIT_SRC) \
			   $(HEADERS)
	@mkdir -p $(dir $@)
	$(call msg,CLANG,$@)
	$(Q)$(CLANG) $(FUZZ_CFLAGS) $< $(MASKPLAN_UNIT_SRC) -lpg_query -o $@

POLICY_SRC := user/hoopd/policy/policy.c user/hoopd/policy/policy_yaml.c
$(FUZZ_OUT)/fuzz_policy: fuzz/fuzz_policy.c fuzz/fuzz_require.h $(POLICY_SRC) user/hoopd/sql/sqlfacts.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(call msg,CLANG,$@)
	$(Q)$(CLANG) $(FUZZ_CFLAGS) $< $(POLICY_SRC) user/hoopd/sql/sqlfacts.c -lyaml -ljson-c \
		-lpg_query -lhs -o $@

# Statement shapes: what the shaper accepts keeps its facts and plan with other constants.
$(FUZZ_OUT)/fuzz_sqlshape: fuzz/fuzz_sqlshape.c fuzz/fuzz_require.h tests/unit/sqlshape_check.h \
			   tests/unit/maskplan_fixture.h $(SQLSHAPE_UNIT_SRC) $(HEADERS)
	@mkdir -p $(dir $@)
	$(call msg,CLANG,$@)
	$(Q)$(CLANG) $(FUZZ_CFLAGS) $< $(SQLSHAPE_UNIT_SRC) -lpg_query -o $@

# SQL facts from any text (libpg_query's parse, then sqlfacts' reader of its tree).
$(FUZZ_OUT)/fuzz_sqlfacts: fuzz/fuzz_sqlfacts.c fuzz/fuzz_require.h user/hoopd/sql/sqlfacts.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(call msg,CLANG,$@)
	$(Q)$(CLANG) $(FUZZ_CFLAGS) $< user/hoopd/sql/sqlfacts.c -lpg_query -o $@

# Pre-parse bounds (sqlsize.c) against libpg_query's own scanner and parse tree.
# What hoopd reads back from its catalog loader process (catalog_wire.c), and the round trip.
$(FUZZ_OUT)/fuzz_catwire: fuzz/fuzz_catwire.c fuzz/fuzz_require.h \
			  user/hoopd/catalog/catalog_wire.c user/hoopd/mask/catalog.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(call msg,CLANG,$@)
	$(Q)$(CLANG) $(FUZZ_CFLAGS) $< user/hoopd/catalog/catalog_wire.c user/hoopd/mask/catalog.c \
		-o $@

$(FUZZ_OUT)/fuzz_mysqllex: fuzz/fuzz_mysqllex.c fuzz/fuzz_require.h fuzz/mysql_fuzz.h \
			   user/hoopd/sql/mysqllex.c user/hoopd/sql/mysqllex.h
	@mkdir -p $(dir $@)
	$(call msg,CLANG,$@)
	$(Q)$(CLANG) $(FUZZ_CFLAGS) -Iuser/hoopd/sql $< user/hoopd/sql/mysqllex.c -o $@

$(FUZZ_OUT)/fuzz_mysqlclass: fuzz/fuzz_mysqlclass.c fuzz/fuzz_require.h fuzz/mysql_fuzz.h $(MYSQL_SQL_SRC) \
			     $(HEADERS)
	@mkdir -p $(dir $@)
	$(call msg,CLANG,$@)
	$(Q)$(CLANG) $(FUZZ_CFLAGS) -Iuser/hoopd/sql $< $(MYSQL_SQL_SRC) -ljson-c -lpg_query -o $@

$(FUZZ_OUT)/fuzz_sqlsize: fuzz/fuzz_sqlsize.c fuzz/fuzz_require.h user/hoopd/sql/sqlsize.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(call msg,CLANG,$@)
	$(Q)$(CLANG) $(FUZZ_CFLAGS) $< user/hoopd/sql/sqlsize.c -lpg_query -o $@

# The SQL dialect on any text: settings restored, texts that do not depend on them read alike
# under both, the split and the grammar error agreeing (fuzz/fuzz_dialect.c).
$(FUZZ_OUT)/fuzz_dialect: fuzz/fuzz_dialect.c fuzz/fuzz_require.h $(DIALECT_SRC) $(HEADERS)
	@mkdir -p $(dir $@)
	$(call msg,CLANG,$@)
	$(Q)$(CLANG) $(FUZZ_CFLAGS) $< $(DIALECT_SRC) -ljson-c -lpg_query -lcrypto -o $@

# The PostgreSQL engine, one target per direction (pg_agent, pg_server), built from the unit
# test's sources; the harness (fuzz/pg_fuzz.c) stands in for the relay and the audit trail.
FUZZ_PG_SRC := fuzz/pg_fuzz.c $(filter-out $(AUDIT_SRC),$(PG_UNIT_SRC))

# Rewritten only when FUZZ_KNOWN_BUGS changes, so that the targets are rebuilt then.
$(FUZZ_OUT)/known-bugs: FORCE
	@mkdir -p $(dir $@)
	@echo $(FUZZ_KNOWN_BUGS) | cmp -s - $@ || echo $(FUZZ_KNOWN_BUGS) > $@

$(FUZZ_OUT)/fuzz_pg_%: fuzz/fuzz_pg_%.c fuzz/pg_fuzz.h $(FUZZ_PG_SRC) $(HEADERS) \
		       $(FUZZ_OUT)/known-bugs
	@mkdir -p $(dir $@)
	$(call msg,CLANG,$@)
	$(Q)$(CLANG) $(FUZZ_CFLAGS) -DFZ_KNOWN_BUGS=$(FUZZ_KNOWN_BUGS) $< $(FUZZ_PG_SRC) \
		-lpg_query -ljson-c -lhs -lssl -lcrypto -o $@

# The MySQL engine, one target per direction (mysql_agent, mysql_server), with the engine's
# whole folder; the harness (fuzz/my_fuzz.c) stands in for the relay and the audit trail.
# FUZZ_KNOWN_BUGS=1 steers them around the engine's open bugs they found (fuzz/my_fuzz.h).
FUZZ_MYSQL_SRC := fuzz/my_fuzz.c $(wildcard user/hoopd/engines/mysql/*.c) $(MYSQL_SQL_SRC) \
		  user/hoopd/gate/gate.c user/hoopd/gate/stmtcache.c user/hoopd/audit/record.c \
		  $(wildcard user/hoopd/mask/mask*.c) user/hoopd/mask/catalog.c \
		  user/hoopd/sql/sqlshape.c user/hoopd/sql/sqlsize.c user/hoopd/sql/dialect_pg.c \
		  user/hoopd/sql/grantkey.c user/common/isotime.c user/common/buf.c \
		  user/common/json.c user/common/log.c

$(FUZZ_OUT)/fuzz_mysql_%: fuzz/fuzz_mysql_%.c fuzz/my_fuzz.h fuzz/fuzz_require.h $(FUZZ_MYSQL_SRC) \
			  $(HEADERS) $(FUZZ_OUT)/known-bugs
	@mkdir -p $(dir $@)
	$(call msg,CLANG,$@)
	$(Q)$(CLANG) $(FUZZ_CFLAGS) -DFZ_KNOWN_BUGS=$(FUZZ_KNOWN_BUGS) $< $(FUZZ_MYSQL_SRC) \
		-lpg_query -ljson-c -lhs -lssl -lcrypto -o $@

# `make fuzz` runs them too (their fuzz_run lines are in the fuzz rule below).
fuzz: $(FUZZ_OUT)/fuzz_mysql_agent $(FUZZ_OUT)/fuzz_mysql_server

# The DataRow and CopyData rewriters, from the masking unit test's sources.
$(FUZZ_OUT)/fuzz_mask_datarow: fuzz/fuzz_mask_datarow.c fuzz/fuzz_require.h $(MASK_UNIT_SRC) $(HEADERS)
	@mkdir -p $(dir $@)
	$(call msg,CLANG,$@)
	$(Q)$(CLANG) $(FUZZ_CFLAGS) $< $(MASK_UNIT_SRC) -lhs -ljson-c -lssl -lcrypto -lm -o $@

# MySQL's text and binary row codecs and column definitions (engines/mysql/myrow.c).
$(FUZZ_OUT)/fuzz_myrow: fuzz/fuzz_myrow.c fuzz/fuzz_require.h $(MASK_UNIT_SRC) \
			user/hoopd/engines/mysql/myrow.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(call msg,CLANG,$@)
	$(Q)$(CLANG) $(FUZZ_CFLAGS) $< $(MASK_UNIT_SRC) user/hoopd/engines/mysql/myrow.c -lhs \
		-ljson-c -lssl -lcrypto -lm -o $@

# hoopctl's audit-trail reader (verify, replay) over any record line.
FUZZ_AUDIT_SRC := user/hoopctl/trailread.c user/hoopctl/disp.c user/common/trail.c \
		  user/common/json.c

$(FUZZ_OUT)/fuzz_audit_record: fuzz/fuzz_audit_record.c fuzz/fuzz_require.h \
			       user/hoopctl/verify.c user/hoopctl/replay.c user/hoopctl/trailread.h \
			       $(FUZZ_AUDIT_SRC) $(HEADERS)
	@mkdir -p $(dir $@)
	$(call msg,CLANG,$@)
	$(Q)$(CLANG) $(FUZZ_CFLAGS) -Iuser/hoopctl $< $(FUZZ_AUDIT_SRC) -ljson-c -lssl -lcrypto -lz \
		-o $@

# What a node reads from the central database about approvals: NOTIFY payloads, decision rows.
$(FUZZ_OUT)/fuzz_central_decision: fuzz/fuzz_central_decision.c fuzz/fuzz_require.h \
				   user/hoopctl/cdecision.c user/hoopctl/cdecision.h
	@mkdir -p $(dir $@)
	$(call msg,CLANG,$@)
	$(Q)$(CLANG) $(FUZZ_CFLAGS) -Iuser/hoopctl $< user/hoopctl/cdecision.c -o $@

# $(call fuzz_run,NAME,FLAGS): build/fuzz/fuzz_NAME for FUZZ_SECONDS over its corpus copy.
define fuzz_run
	@mkdir -p $(FUZZ_OUT)/corpus/$(1)
	$(Q)cp fuzz/corpus/$(1)/* $(FUZZ_OUT)/corpus/$(1)/
	$(call msg,FUZZ,$(FUZZ_OUT)/fuzz_$(1) $(FUZZ_SECONDS)s)
	$(Q)$(FUZZ_OUT)/fuzz_$(1) -max_total_time=$(FUZZ_SECONDS) $(2) \
		$(FUZZ_OUT)/corpus/$(1) 2>$(FUZZ_OUT)/fuzz_$(1).log \
		|| { tail -n 60 $(FUZZ_OUT)/fuzz_$(1).log; exit 1; }
	@grep '^Done' $(FUZZ_OUT)/fuzz_$(1).log
endef

.PHONY: FORCE
fuzz: $(FUZZ_OUT)/fuzz_policy $(FUZZ_OUT)/fuzz_sqlfacts $(FUZZ_OUT)/fuzz_pg_agent \
      $(FUZZ_OUT)/fuzz_pg_server $(FUZZ_OUT)/fuzz_pg_states $(FUZZ_OUT)/fuzz_maskplan \
      $(FUZZ_OUT)/fuzz_mask_datarow $(FUZZ_OUT)/fuzz_sqlshape $(FUZZ_OUT)/fuzz_audit_record \
      $(FUZZ_OUT)/fuzz_sqlsize $(FUZZ_OUT)/fuzz_dialect $(FUZZ_OUT)/fuzz_catwire \
      $(FUZZ_OUT)/fuzz_mysqllex $(FUZZ_OUT)/fuzz_mysqlclass $(FUZZ_OUT)/fuzz_myrow \
      $(FUZZ_OUT)/fuzz_central_decision
	$(call fuzz_run,policy,-artifact_prefix=$(FUZZ_OUT)/ -dict=fuzz/policy.dict)
	$(call fuzz_run,sqlfacts,-artifact_prefix=$(FUZZ_OUT)/sqlfacts- -max_len=4096)
	$(call fuzz_run,pg_agent,-artifact_prefix=$(FUZZ_OUT)/pg_agent- -dict=fuzz/pg.dict)
	$(call fuzz_run,pg_server,-artifact_prefix=$(FUZZ_OUT)/pg_server- -dict=fuzz/pg.dict)
	$(call fuzz_run,pg_states,-artifact_prefix=$(FUZZ_OUT)/pg_states- -max_len=512)
	$(call fuzz_run,maskplan,-artifact_prefix=$(FUZZ_OUT)/maskplan- -dict=fuzz/maskplan.dict)
	$(call fuzz_run,mask_datarow,-artifact_prefix=$(FUZZ_OUT)/mask_datarow- -dict=fuzz/mask.dict)
	$(call fuzz_run,sqlshape,-artifact_prefix=$(FUZZ_OUT)/sqlshape- -dict=fuzz/maskplan.dict -max_len=1024)
	$(call fuzz_run,audit_record,-artifact_prefix=$(FUZZ_OUT)/audit_record- -dict=fuzz/audit.dict -max_len=4096)
	$(call fuzz_run,sqlsize,-artifact_prefix=$(FUZZ_OUT)/sqlsize- -dict=fuzz/maskplan.dict -max_len=2048)
	$(call fuzz_run,dialect,-artifact_prefix=$(FUZZ_OUT)/dialect- -dict=fuzz/maskplan.dict -max_len=1024)
	$(call fuzz_run,catwire,-artifact_prefix=$(FUZZ_OUT)/catwire- -max_len=4096)
	$(call fuzz_run,mysqllex,-artifact_prefix=$(FUZZ_OUT)/mysqllex- -dict=fuzz/mysql.dict -max_len=2048)
	$(call fuzz_run,mysqlclass,-artifact_prefix=$(FUZZ_OUT)/mysqlclass- -dict=fuzz/mysql.dict -max_len=2048)
	$(call fuzz_run,mysql_agent,-artifact_prefix=$(FUZZ_OUT)/mysql_agent- -dict=fuzz/mysql_wire.dict)
	$(call fuzz_run,mysql_server,-artifact_prefix=$(FUZZ_OUT)/mysql_server- -dict=fuzz/mysql_wire.dict)
	$(call fuzz_run,myrow,-artifact_prefix=$(FUZZ_OUT)/myrow- -max_len=4096)
	$(call fuzz_run,central_decision,-artifact_prefix=$(FUZZ_OUT)/central_decision- -max_len=4096)

test: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)tests/run.sh

demo: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)scripts/demo.sh

# Benchmarks (bench/run.py, as root; not part of `make test`): hoopd against a direct connection,
# haproxy and pgbouncer (PostgreSQL, pgbench) and against direct and haproxy (MariaDB, sysbench),
# in one run, into bench/RESULTS.md. About 27 minutes on two CPUs; BENCH_SECONDS and
# BENCH_ROUNDS (3 and 3) set its length, BENCH_NO_MARIADB=1 leaves MariaDB out. Needs the
# `bench` package set.
.PHONY: bench
bench:
	$(Q)scripts/deps.sh bench
	$(Q)$(MAKE) --no-print-directory all $(OUT)/bench/mask_bench
	$(Q)/usr/bin/python3 bench/run.py

# The BPF end-to-end suite inside a qemu guest (TCG) on Debian 12's 6.1 LTS kernel, as root:
# vmtests/run.sh, vmtests/README.md. A few minutes; the kernel package and initramfs are cached
# in build/vm/. Needs the `vm` package set (qemu, busybox-static).
VMTOOLS := build/vm/no_sockmap build/vm/no_sockmap.bpf.o

build/vm/no_sockmap.bpf.o: vmtests/no_sockmap.bpf.c
	@mkdir -p $(dir $@)
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@

build/vm/no_sockmap: vmtests/no_sockmap.c
	@mkdir -p $(dir $@)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) $< -lbpf -lelf -lz -o $@

.PHONY: vmtest
vmtest:
	$(Q)scripts/deps.sh vm
	$(Q)$(MAKE) --no-print-directory all $(VMTOOLS)
	$(Q)vmtests/run.sh

# The node image (deploy/Dockerfile), tagged hoop:VERSION-COMMIT and hoop:VERSION, with
# whichever engine the machine has (IMAGE_ENGINE=docker|podman|buildah chooses); on a machine that
# reaches no registry the debian:12 base is made from Debian's packages (mmdebstrap, cached in
# build/image/). Prints the tag and the size: scripts/image.sh, docs/deploy.md.
.PHONY: image
image:
	$(Q)scripts/image.sh

# Masking throughput (bench/mask_bench.c): MB/s per core of mask_datarow over ~64 MB of
# realistic rows against a plain copy, and instructions per byte under callgrind (valgrind, the
# stable figure). About a minute; not part of `make test`.
BENCH_MASK_MB ?= 64

$(OUT)/bench/mask_bench: bench/mask_bench.c $(MASK_UNIT_SRC) $(HEADERS)
	@mkdir -p $(dir $@)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -Iuser/hoopd $(LDFLAGS) $< $(MASK_UNIT_SRC) -lhs -ljson-c -lssl -lcrypto \
		-lm -o $@

.PHONY: bench-mask
bench-mask:
	$(Q)scripts/deps.sh bench
	$(Q)$(MAKE) --no-print-directory $(OUT)/bench/mask_bench
	$(Q)$(OUT)/bench/mask_bench $(BENCH_MASK_MB)

clean:
	rm -rf build

fmt:
	clang-format -i $(wildcard user/*/*.c user/*/*.h user/hoopd/*/*.[ch] user/hoopd/*/*/*.[ch] include/*.h bpf/*.c bpf/lib/*.h \
		tests/unit/*.c tests/unit/*.h fuzz/*.c)
