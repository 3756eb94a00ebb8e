"""Postings carry the columns the BM25 query filters and scores on, and exist only for active chunks.

The query then reads one index (term, tf DESC) INCLUDE (...) without visiting the chunk table, which was
most of its time at 100k chunks. Postings of inactive generations are dropped: they are written when a
generation activates (knowledge.services.document_activate).
"""

from django.db import migrations, models

FILL = """
DELETE FROM knowledge_posting p USING knowledge_chunk c WHERE c.id = p.chunk_id AND NOT c.is_active;
UPDATE knowledge_posting p
   SET knowledge_base_id = c.knowledge_base_id, document_id = c.document_id, chunk_length = c.lexical_length
  FROM knowledge_chunk c WHERE c.id = p.chunk_id;
"""

# The BM25 query reads only the index when the visibility map says the table's pages are all visible;
# autovacuum sets it, by default after inserts of 20% of the table. Postings arrive in bulk with every
# document, so ask for it sooner.
AUTOVACUUM = """
ALTER TABLE knowledge_posting SET (autovacuum_vacuum_insert_scale_factor = 0.02, autovacuum_vacuum_scale_factor = 0.05)
"""
AUTOVACUUM_RESET = (
    "ALTER TABLE knowledge_posting RESET (autovacuum_vacuum_insert_scale_factor, autovacuum_vacuum_scale_factor)"
)


class Migration(migrations.Migration):
    dependencies = [
        ("knowledge", "0005_posting_term_tf_index"),
    ]

    operations = [
        migrations.AddField(
            model_name="chunk",
            name="page_end",
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="posting",
            name="knowledge_base_id",
            field=models.BigIntegerField(default=0),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="posting",
            name="document_id",
            field=models.BigIntegerField(default=0),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="posting",
            name="chunk_length",
            field=models.PositiveIntegerField(default=0),
            preserve_default=False,
        ),
        migrations.RunSQL(FILL, migrations.RunSQL.noop),
        migrations.RunSQL(AUTOVACUUM, AUTOVACUUM_RESET),
        migrations.RemoveConstraint(model_name="posting", name="knowledge_posting_unique"),
        migrations.RemoveIndex(model_name="posting", name="knowledge_posting_chunk"),
        migrations.RemoveIndex(model_name="posting", name="knowledge_posting_term_tf"),
        migrations.AddConstraint(
            model_name="posting",
            constraint=models.UniqueConstraint(fields=("chunk", "term"), name="knowledge_posting_chunk_term"),
        ),
        migrations.AddIndex(
            model_name="posting",
            index=models.Index(
                fields=["term", "-tf"],
                include=("chunk", "knowledge_base_id", "document_id", "chunk_length"),
                name="knowledge_posting_term_tf",
            ),
        ),
    ]
