"""train stage of scalinglab (see DESIGN.md §2)."""
