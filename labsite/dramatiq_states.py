"""The state of every Dramatiq message the site sends, in django-dramatiq's Task table: Dramatiq keeps none of its
own without a results backend (and its backends are Redis or Memcached, servers the RabbitMQ backend does not run).

django-dramatiq's AdminMiddleware records each message's state, but it writes "enqueued" after the broker has the
message: a worker that runs the task first is overwritten, and the task stays "enqueued" for good (its issue 154,
open). TaskStates is that middleware with the fix proposed there: the sender's row is created only if the worker has
not made one yet, so a state never goes back."""

from django_dramatiq.middleware import AdminMiddleware


class TaskStates(AdminMiddleware):
    def after_enqueue(self, broker, message, delay):
        from django_dramatiq.models import DATABASE_LABEL, Task

        status = Task.STATUS_DELAYED if delay else Task.STATUS_ENQUEUED
        Task.tasks.using(DATABASE_LABEL).get_or_create(
            id=message.message_id,
            defaults={"message_data": message.encode(), "status": status, "actor_name": message.actor_name,
                      "queue_name": message.queue_name})
