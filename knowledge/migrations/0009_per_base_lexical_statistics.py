"""BM25 statistics per knowledge base instead of one set for all of them.

The statistics are derived data: the old tables are dropped and the new ones filled from the postings
(which exist only for active chunks) and the active chunks' lengths.
"""

import django.db.models.deletion
from django.db import migrations, models

REBUILD = """
INSERT INTO knowledge_termstatistic (knowledge_base_id, term, document_frequency)
SELECT p.knowledge_base_id, p.term, COUNT(*) FROM knowledge_posting p GROUP BY p.knowledge_base_id, p.term;
INSERT INTO knowledge_lexicalstatistics (knowledge_base_id, chunk_count, total_length)
SELECT c.knowledge_base_id, COUNT(*), COALESCE(SUM(c.lexical_length), 0)
  FROM knowledge_chunk c JOIN knowledge_document d ON d.id = c.document_id AND d.active_generation = c.generation
 GROUP BY c.knowledge_base_id;
"""


class Migration(migrations.Migration):
    dependencies = [("knowledge", "0008_chunk_page_starts")]

    operations = [
        migrations.DeleteModel(name="TermStatistic"),
        migrations.DeleteModel(name="LexicalStatistics"),
        migrations.CreateModel(
            name="TermStatistic",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("term", models.CharField(max_length=100)),
                ("document_frequency", models.PositiveIntegerField(default=0)),
                (
                    "knowledge_base",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="+", to="knowledge.knowledgebase"
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(fields=("term", "knowledge_base"), name="knowledge_termstatistic_term_base")
                ]
            },
        ),
        migrations.CreateModel(
            name="LexicalStatistics",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("chunk_count", models.BigIntegerField(default=0)),
                ("total_length", models.BigIntegerField(default=0)),
                (
                    "knowledge_base",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE, related_name="+", to="knowledge.knowledgebase"
                    ),
                ),
            ],
        ),
        migrations.RunSQL(REBUILD, migrations.RunSQL.noop),
    ]
