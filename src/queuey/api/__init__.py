"""HTTP only: parse, call the service, render. Never imports a storage back-end."""
