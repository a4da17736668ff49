from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("labsite", "0002_emailjob_retry_lease_idempotency")]

    operations = [
        migrations.CreateModel(
            name="Signup",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("email", models.CharField(max_length=254)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
            ],
        ),
    ]
