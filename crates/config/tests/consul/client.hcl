# A Consul client agent on an application host, as in Consul's "Deploy Consul on VMs" and
# service-mesh tutorials: joins the servers, leaves gracefully when stopped, and registers the
# host's services from its config, each with health checks and a Connect sidecar.

datacenter = "us-east-1"
node_name  = "web-01"
data_dir   = "/opt/consul/data"

server     = false
retry_join = ["10.0.1.11", "10.0.1.12", "10.0.1.13"]

bind_addr   = "10.0.2.21"
client_addr = "127.0.0.1"

encrypt = "rMHNdfkAVGLRqzrrobElXoUL+aNNqGwP7gkypEPcE2Q="

log_level = "info"

ports {
  grpc = 8502
}

connect {
  enabled = true
}

enable_local_script_checks = true

leave_on_terminate   = true
rejoin_after_leave   = true
disable_update_check = true

telemetry {
  prometheus_retention_time = "30s"
  disable_hostname          = true
}

# Repeated `service` blocks: one definition each.
service {
  name = "web"
  id   = "web-1"
  port = 8080
  tags = ["v1", "http"]
  meta = {
    version = "1.4.2"
  }

  check {
    id       = "web-http"
    name     = "HTTP on 8080"
    http     = "http://127.0.0.1:8080/health"
    method   = "GET"
    interval = "10s"
    timeout  = "2s"
  }

  connect {
    sidecar_service {
      proxy {
        upstreams = [
          {
            destination_name = "api"
            local_bind_port  = 9091
          }
        ]
      }
    }
  }
}

service {
  name = "node-exporter"
  port = 9100

  checks = [
    {
      name     = "exporter TCP"
      tcp      = "127.0.0.1:9100"
      interval = "30s"
      timeout  = "1s"
    },
    {
      name     = "exporter process"
      args     = ["/usr/bin/pgrep", "node_exporter"]
      interval = "1m"
    }
  ]
}

# A node-level check, not tied to a service.
check {
  id       = "disk"
  name     = "Disk space"
  args     = ["/usr/local/bin/check_disk", "-w", "20%"]
  interval = "5m"
}
