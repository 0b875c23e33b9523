"""sweep stage of scalinglab (see DESIGN.md §2)."""
