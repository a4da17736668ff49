"""One module per notebook, named after it, and `common`: the palette and the chart types several share."""
