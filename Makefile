# The two commands a new user needs are `make run` and `make test` (see README.md).
.PHONY: run test setup dev-pbx bench

run:
	bash scripts/run.sh

test:
	bash scripts/test.sh

setup:
	bash scripts/setup.sh

dev-pbx:
	bash scripts/dev_pbx.sh

bench:
	bash scripts/bench.sh
