# A module whose resource lives in a plain file, so an out-of-band edit is real drift
# (driftless/drifttest reads the file back on refresh; see testprovider/).
terraform {
  required_providers {
    drifttest = {
      source  = "driftless/drifttest"
      version = "0.1.0"
    }
    null = {
      source  = "hashicorp/null"
      version = "2.1.2"
    }
  }
}

variable "greeting" {
  type = string
}

variable "target_dir" {
  type        = string
  description = "Where the managed file lives."
}

variable "api_token" {
  type      = string
  sensitive = true
  default   = "none"
}

resource "drifttest_file" "motd" {
  path    = "${var.target_dir}/motd.txt"
  content = "${var.greeting}\n"
}

resource "null_resource" "release" {
  triggers = {
    greeting = var.greeting
  }
}

output "motd_path" {
  value = drifttest_file.motd.path
}

output "api_token" {
  value     = var.api_token
  sensitive = true
}
