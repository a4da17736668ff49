from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("labsite", "0001_initial")]

    operations = [
        migrations.AddField(model_name="emailjob", name="next_attempt_at",
                            field=models.DateTimeField(blank=True, null=True)),
        migrations.AddField(model_name="emailjob", name="lease_overruns",
                            field=models.PositiveIntegerField(default=0)),
        migrations.AddField(model_name="emailjob", name="idempotency_key",
                            field=models.CharField(blank=True, max_length=255, null=True, unique=True)),
    ]
