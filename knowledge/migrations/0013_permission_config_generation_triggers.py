"""The permission filter's sets are kept per user and process (knowledge.search.acl_for, under the configuration
generation of portal/core/config_cache.py): every write that can change what a user reads moves the generation.

Grants to users and to roles (guardian), role memberships, permission codenames, documents' restrictions to
roles, and a document moved to another knowledge base (a row trigger on that column only: documents are
written often, and only a move changes whose restricted documents they are). Roles themselves already move it
(routing 0004).
"""

from django.db import migrations

from portal.core.config_cache import column_trigger_sql, trigger_sql

TABLES = (
    "guardian_userobjectpermission",
    "guardian_groupobjectpermission",
    "auth_user_groups",
    "auth_permission",
    "knowledge_document_restricted_to_roles",
)


class Migration(migrations.Migration):
    dependencies = [
        ("knowledge", "0012_knowledge_base_unlisted"),
        ("core", "0002_config_generation"),
        ("guardian", "0003_remove_groupobjectpermission_guardian_gr_content_ae6aec_idx_and_more"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [
        *(migrations.RunSQL(trigger_sql(table)[0], trigger_sql(table)[1]) for table in TABLES),
        migrations.RunSQL(*column_trigger_sql("knowledge_document", "knowledge_base_id")),
    ]
