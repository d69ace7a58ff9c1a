"""Peak shaving: time-varying site caps, external grid signals, price-aware shifting."""
