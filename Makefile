# The two commands a new user needs are `make run` and `make test` (see README.md).
.PHONY: run test setup dev-pbx bench run-prod

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

# The production topology on one machine (Caddy HTTPS, PostgreSQL, Redis, workers, sidecars): README.md.
run-prod:
	bash scripts/run_prod.sh
