"""SOPS-format secrets with age keys: read what ``sops`` writes, write what ``sops`` reads."""

from mailopsd.secrets.age import IdentitySet, find_identities, generate_identity, parse_identities
from mailopsd.secrets.changes import ChangedFileError, Finding, Hints
from mailopsd.secrets.creation_rules import CreationRule, NoMatchingRuleError, find_creation_rule
from mailopsd.secrets.demo import (
    DEMO_KEY_FILE,
    DEMO_RECIPIENT,
    demo_refusal,
    has_demo_recipient,
    is_demo_file,
)
from mailopsd.secrets.edit import edit_sops_file
from mailopsd.secrets.history import earlier_versions
from mailopsd.secrets.metadata import DEFAULT_RULE, Metadata, Rule, parse_metadata
from mailopsd.secrets.sopsfile import (
    DecryptedFile,
    EncryptOptions,
    UpdatedFile,
    decrypt_data,
    decrypt_text,
    decrypt_yaml_data,
    encrypt_text,
    is_encrypted_data,
    is_encrypted_text,
    read_metadata,
    rotate_text,
    secret_fields_rule,
    update_keys_text,
    update_text,
)
from mailopsd.secrets.tree import Decrypted, LeafError, walk
from mailopsd.secrets.yamltext import split_documents

__all__ = [
    "DEFAULT_RULE",
    "DEMO_KEY_FILE",
    "DEMO_RECIPIENT",
    "ChangedFileError",
    "CreationRule",
    "Decrypted",
    "DecryptedFile",
    "EncryptOptions",
    "Finding",
    "Hints",
    "IdentitySet",
    "LeafError",
    "Metadata",
    "NoMatchingRuleError",
    "Rule",
    "UpdatedFile",
    "decrypt_data",
    "decrypt_text",
    "decrypt_yaml_data",
    "demo_refusal",
    "earlier_versions",
    "edit_sops_file",
    "encrypt_text",
    "find_creation_rule",
    "find_identities",
    "generate_identity",
    "has_demo_recipient",
    "is_demo_file",
    "is_encrypted_data",
    "is_encrypted_text",
    "parse_identities",
    "parse_metadata",
    "read_metadata",
    "rotate_text",
    "secret_fields_rule",
    "split_documents",
    "update_keys_text",
    "update_text",
    "walk",
]
