"""What comes back: bounces, replies, and the policy that protects a sender's reputation."""
