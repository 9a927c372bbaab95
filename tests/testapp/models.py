from django.db import models


class Order(models.Model):
    """Something a job can be bound to (a content object)."""

    number = models.CharField(max_length=20)
    reminded = models.IntegerField(default=0)

    def __str__(self) -> str:
        return self.number

    def remind(self, times: int = 1) -> str:
        Order.objects.filter(pk=self.pk).update(reminded=models.F("reminded") + times)
        return f"reminded {self.number}"


class Document(models.Model):
    """A content object with a text primary key."""

    slug = models.SlugField(primary_key=True)


class JobRun(models.Model):
    """One row per attempt of a job. The unique constraint makes a second run of the
    same attempt fail loudly, which is how the concurrency tests catch double runs."""

    job_id = models.BigIntegerField()
    attempt = models.PositiveIntegerField(default=1)
    pid = models.IntegerField()
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = (
            models.UniqueConstraint(fields=["job_id", "attempt"], name="one_run_per_attempt"),
        )

    def __str__(self) -> str:
        return f"run of job {self.job_id}"
