"""Searchable chunks are those of their document's active generation; `Chunk.is_active` goes.

Activating a version flipped is_active on each of its chunks: an UPDATE that wrote every chunk row a
second time, and with it a second entry in every index, the HNSW graph included (the old entries then
waited for VACUUM). Document.active_generation already says which generation is live, so search asks
it instead (see knowledge.search.ACTIVE_CHUNK_SQL) and activation writes one row. Chunks with
is_active = false all belong to generations other than their document's active one, so nothing changes
for a search.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("knowledge", "0006_posting_covering_index"),
    ]

    operations = [
        migrations.RemoveIndex(model_name="chunk", name="knowledge_c_documen_144be5_idx"),
        migrations.RemoveField(model_name="chunk", name="is_active"),
    ]
