# The other end of web.hcl's upstream: `db` on port 5432, reachable only through its sidecar.
#
# Copy to /etc/mesh/client.d/db.hcl (0640 root:mesh) on the node that runs db, then
# `systemctl reload mesh-client` and `systemctl enable --now mesh-sidecar@db`. db itself
# should listen on 127.0.0.1 only, so that nothing bypasses the sidecar's mTLS and intentions.

service {
  name = "db"
  port = 5432

  check {
    name     = "db listening"
    tcp      = "127.0.0.1:5432"
    interval = "10s"
  }

  connect {
    sidecar_service {}
  }
}
