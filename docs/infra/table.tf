# The aiolease lease table (string partition key "pk", on-demand billing, TTL on "ttl")
# and a least-privilege policy for the processes that hold leases.

variable "table_name" {
  description = "Name of the lease table (LeaseManager's `table`, AIOLEASE_TABLE)."
  type        = string
  default     = "leases"
}

resource "aws_dynamodb_table" "leases" {
  name         = var.table_name
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "pk"

  attribute {
    name = "pk"
    type = "S"
  }

  ttl {
    attribute_name = "ttl"
    enabled        = true
  }

  # The items carry the fences: keep them.
  deletion_protection_enabled = true

  lifecycle {
    prevent_destroy = true
  }
}

data "aws_iam_policy_document" "lease_user" {
  statement {
    sid = "AioleaseLeases"
    actions = [
      "dynamodb:DescribeTable",
      "dynamodb:GetItem",
      "dynamodb:Scan",
      "dynamodb:UpdateItem",
    ]
    resources = [aws_dynamodb_table.leases.arn]
  }
}

resource "aws_iam_policy" "lease_user" {
  name        = "aiolease-lease-user"
  description = "Take, refresh, release and list aiolease leases (not create the table)."
  policy      = data.aws_iam_policy_document.lease_user.json
}

output "lease_table_arn" {
  value = aws_dynamodb_table.leases.arn
}
