"""One module per notebook, named after it: its experiments, its key_figures() (the figures its notebook records
and its benchmark prints, under the same names) and its benchmark (`python -m helpers bench NAME`)."""
