"""Side-by-side speed comparisons of envfence with the libraries a user would pick instead (`make bench`)."""
