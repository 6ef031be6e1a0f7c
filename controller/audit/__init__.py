"""Equipment audit (issue 7): inventory and plan import from CSV/XLSX, and the audit report against the plan."""
