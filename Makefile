# Maintainer shortcuts. The README's two commands are what users and CI run.
.PHONY: notebooks test book

export WCBOOK_DATA ?= $(abspath ../shared/data)

# Re-execute chapters from their Jupytext sources into their paired notebooks (keeps cell ids):
# every chapter, or those named, e.g. after new scaling records:
#   make notebooks CHAPTERS="A1_scaling A3_certificate A5_performance results scorecard conclusions"
CHAPTERS ?= $(basename $(notdir $(wildcard book/*.py)))

notebooks:
	for src in $(addprefix book/,$(addsuffix .py,$(CHAPTERS))); do \
	  jupytext --to ipynb --update "$$src" && \
	  jupyter nbconvert --to notebook --execute --inplace "$${src%.py}.ipynb" || exit 1; \
	done

test:
	python -m pytest --nbval

book:
	jupyter-book build . -W -n --keep-going
