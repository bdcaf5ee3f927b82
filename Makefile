# Maintainer shortcuts. The README's two commands are what users and CI run.
.PHONY: notebooks test book

export WCBOOK_DATA ?= $(abspath ../shared/data)

# Re-execute every chapter from its Jupytext source into its paired notebook (keeps cell ids).
notebooks:
	for src in book/*.py; do \
	  jupytext --to ipynb --update "$$src" && \
	  jupyter nbconvert --to notebook --execute --inplace "$${src%.py}.ipynb" || exit 1; \
	done

test:
	python -m pytest --nbval

book:
	jupyter-book build . -W -n --keep-going
