"""Server-rendered pages of a tenant host and the request plumbing they share."""
