from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("labsite", "0003_signup")]

    operations = [
        migrations.AddField(model_name="emailjob", name="enqueue_failures",
                            field=models.PositiveIntegerField(default=0)),
    ]
