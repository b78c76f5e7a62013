# Thin wrapper over Meson: the commands people type. See README.md.
BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 10
PREFIX     ?= /usr/local
POSTFIX_LINKS ?= no
PYTHON     := /usr/bin/python3

.PHONY: all deps test-deps fuzz-deps run test unit integration durability sanitize fuzz bench compare-postfix install clean format check-format check-banned check-layers user deb package-test

all: $(BUILD)/hongyan

# Each target asks for the packages it needs (scripts/install-deps.sh).
deps:
	@scripts/install-deps.sh build

test-deps:
	@scripts/install-deps.sh test

fuzz-deps:
	@scripts/install-deps.sh fuzz

# Meson does not glob; scripts/configure.sh re-runs setup when the set of
# source files changes, so adding a file never needs a manual step.
$(BUILD)/hongyan: FORCE deps
	@scripts/configure.sh $(BUILD)
	@ninja -C $(BUILD)

# As root the server drops to mail_owner, so the account must exist first.
run: all
	@scripts/ensure-user.sh
	./$(BUILD)/hongyan serve

# The test builds compile in test-only triggers (-Dtest_hooks=true: the
# seccomp violation test); `make all`, install and the package never do.
test: test-deps check-banned check-format check-layers
	@scripts/ensure-user.sh
	@scripts/configure.sh $(BUILD) -Dtest_hooks=true
	ninja -C $(BUILD)
	meson test -C $(BUILD) --print-errorlogs
	HONGYAN_BIN=$(CURDIR)/$(BUILD)/hongyan $(PYTHON) -m pytest -q tests/integration
	@scripts/configure.sh $(ASAN_BUILD) -Db_sanitize=address,undefined -Db_lundef=false -Dtest_hooks=true
	ninja -C $(ASAN_BUILD)
	meson test -C $(ASAN_BUILD) --print-errorlogs
	HONGYAN_BIN=$(CURDIR)/$(ASAN_BUILD)/hongyan HONGYAN_SANITIZED=1 $(PYTHON) -m pytest -q tests/integration
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=$(FUZZ_SECONDS)

unit: all
	meson test -C $(BUILD) --print-errorlogs

integration: all test-deps
	@scripts/ensure-user.sh
	HONGYAN_BIN=$(CURDIR)/$(BUILD)/hongyan $(PYTHON) -m pytest -q tests/integration

# The long power-cut campaign (docs/queue.md, "What a power cut can and
# cannot cost"): ten cut rounds under load and cuts 5-30 s after deferrals,
# about 2 minutes, root only (loop device); .ci/run calls it after `make test`.
# The short form (test_powercut.py) is in `make test`.
durability: all test-deps
	@scripts/ensure-user.sh
	HONGYAN_DURABILITY=1 HONGYAN_BIN=$(CURDIR)/$(BUILD)/hongyan $(PYTHON) -m pytest -q -rs \
		tests/integration/test_powercut_long.py

fuzz: fuzz-deps
	@CC=clang scripts/configure.sh $(FUZZ_BUILD) -Dfuzz=true -Db_lundef=false
	ninja -C $(FUZZ_BUILD)
	@scripts/run-fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

bench: all
	bench/run.sh

# Restriction replies side by side with Postfix 3.7 (needs root; fetches Postfix like bench).
compare-postfix: all
	bench/run.sh --servers hongyan --only restrict --quick >/dev/null
	/usr/bin/python3 bench/compare_restrict.py

# POSTFIX_LINKS=yes also links postconf and postmap (they would shadow Postfix's).
install: all
	POSTFIX_LINKS=$(POSTFIX_LINKS) scripts/install.sh $(BUILD) $(PREFIX)

# The Debian package, built unsigned from a clean copy of the tree into dist/.
deb:
	@scripts/build-deb.sh dist

# Builds the package (unless dist/ has one for this tree), installs it on this
# machine, sends with mail(1) and sendmail -t, purges it. Root; .ci/run calls it.
package-test: test-deps
	HONGYAN_PACKAGE_TEST=1 $(PYTHON) -m pytest -q tests/integration/test_package.py

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

check-format:
	clang-format --dry-run -Werror $$(git ls-files '*.c' '*.h')

# docs/architecture.md, "Layers": no include from a folder to one above it.
check-layers:
	@scripts/check-layers.sh

# STYLE.md: these calls have no length and are not used anywhere in src/.
check-banned:
	@! grep -rnE '\b(strcpy|strcat|sprintf|vsprintf|gets)\s*\(' src fuzz tests/unit || \
	  { echo "banned string call (see STYLE.md)"; exit 1; }

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)

FORCE:
