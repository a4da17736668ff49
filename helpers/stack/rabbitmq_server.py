"""A real RabbitMQ broker (Debian's `rabbitmq-server`) for one run: its own Erlang port mapper, a per-run user and
password, its data, logs and cookie in the run folder, loopback only, stopped with the lab.

A queue backend that needs it mixes in UsesRabbitMQ; the lab then starts it before the site and stops it last:

    listeners.tcp.default 127.0.0.1:PORT   AMQP on loopback only
    RABBITMQ_DIST_PORT + inet_dist_use_interface {127,0,0,1}
                                           the Erlang distribution port (which rabbitmqctl would use) on loopback
                                           too: without the kernel flag it listens on 0.0.0.0
    epmd -address 127.0.0.1 -port P        the Erlang port mapper the node registers with, started by the lab in
                                           the foreground (ERL_EPMD_PORT tells the node where): one the node starts
                                           itself daemonizes, outlives the broker and would be left behind. epmd
                                           adds the IPv6 loopback (::1) to the address it is given
    default_user lab, default_pass <secret>
                                           made on the first boot of the data folder; the password sits in the
                                           broker's 0600 configuration file, never on a command line or in the
                                           broker's environment (the site gets it in LAB_AMQP_URL, as LAB_REDIS_URL)
    RABBITMQ_MNESIA_BASE, RABBITMQ_LOG_BASE, HOME (its .erlang.cookie), TMPDIR, the plugin list
                                           all in the run folder's rabbitmq/: nothing in /var/lib/rabbitmq, /etc or
                                           /tmp; RABBITMQ_CONF_ENV_FILE points there too, so the system's
                                           /etc/rabbitmq/rabbitmq-env.conf changes nothing

As root (CI) the broker and its epmd run as Debian's `rabbitmq` user in the run folder's rabbitmq/ (0700, that user's:
helpers.stack.server_user). The broker's log goes to stdout, the ManagedProcess's log in the run folder. SIGTERM
stops the node cleanly (about a second); the lab then stops epmd.

Installing Debian's package starts a system broker on 0.0.0.0:5672 where the post-install script may start services:
the Makefile's system-deps installs it under a policy-rc.d that denies every start.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar
from urllib.parse import quote

from helpers.stack import server_user
from helpers.stack.processes import LOOPBACK, SERVER_ENVIRONMENT, ProcessFailed, free_port
from helpers.stack.queues import UsesServer

if TYPE_CHECKING:
    from helpers.stack.lab import Lab

SERVER_USER = "rabbitmq"  # the system user Debian's rabbitmq-server package creates
BROKER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")  # the package's start script, which execs the Erlang VM
NODE = "lab@localhost"  # unique per port mapper: the lab's own epmd knows no other node
USER = "lab"
VHOST = "/"
START_TIMEOUT_S = 60.0  # about 7 s alone on this 2-core machine, longer beside other tests


def executable() -> Path:
    if not BROKER.exists():
        raise FileNotFoundError("rabbitmq-server is not installed: `make system-deps` installs Debian's package "
                                "(apt-get install rabbitmq-server, with a policy-rc.d that keeps it stopped)")
    return BROKER


def epmd_executable() -> str:
    found = shutil.which("epmd") or next((str(p) for p in Path("/usr/lib/erlang").glob("erts-*/bin/epmd")), None)
    if found is None:
        raise FileNotFoundError("epmd (Erlang's port mapper) is not installed: it comes with rabbitmq-server")
    return found


def url(port: int, password: str | None = None) -> str:
    """The broker's AMQP URL (`//`: the default virtual host, "/")."""
    auth = f"{USER}:{quote(password, safe='')}@" if password else f"{USER}@"
    return f"amqp://{auth}{LOOPBACK}:{port}/{quote(VHOST, safe='')}"


def connect(port: int, password: str, timeout_s: float = 5.0):
    """An open AMQP connection (py-amqp, which Celery's kombu uses)."""
    import amqp

    conn = amqp.Connection(f"{LOOPBACK}:{port}", userid=USER, password=password, virtual_host=VHOST,
                           connect_timeout=timeout_s, read_timeout=timeout_s, write_timeout=timeout_s)
    conn.connect()
    return conn


def answers(port: int, password: str) -> bool:
    """True once the broker accepts the user's password on AMQP."""
    import amqp

    try:
        with contextlib.closing(connect(port, password, timeout_s=1.0)):
            return True
    except (amqp.AMQPError, OSError):
        return False


def ready_messages(conn, queue: str) -> int:
    """Messages waiting in `queue` for a consumer (not those delivered and unacknowledged): a passive declare,
    which answers without creating the queue; 0 for a queue not declared yet."""
    import amqp

    channel = conn.channel()
    try:
        return channel.queue_declare(queue, passive=True).message_count
    except amqp.exceptions.NotFound:  # closes the channel
        return 0
    finally:
        with contextlib.suppress(amqp.AMQPError, OSError):
            channel.close()


def write_config(path: Path, port: int, password: str, owner: str | None) -> Path:
    lines = [f"listeners.tcp.default = {LOOPBACK}:{port}",
             f"default_user = {USER}", f"default_pass = {password}", f"default_vhost = {VHOST}",
             "default_permissions.configure = .*", "default_permissions.read = .*", "default_permissions.write = .*"]
    return server_user.private_file(path, "\n".join(lines) + "\n", owner)


class RabbitMQServer:
    """The run's broker and its port mapper: a data folder made once per run folder, ports kept across restarts."""

    def __init__(self, lab: Lab):
        self.lab = lab
        self.port: int | None = None
        self.dist_port: int | None = None
        self.epmd_port: int | None = None
        self._password: str | None = None
        self._fresh_port = False

    @property
    def folder(self) -> Path:
        """The broker's own folder: its configuration, data, logs and Erlang cookie (the server user's, 0700)."""
        return self.lab.run_dir / "rabbitmq"

    @property
    def config_file(self) -> Path:
        return self.folder / "rabbitmq.conf"

    @property
    def url(self) -> str:
        """The broker's URL, password included (for a client of this run's broker)."""
        return url(self.port, self._password)

    @property
    def location(self) -> str:
        """Where the broker is, for a reader of the notebook (no password)."""
        return url(self.port)

    def connect(self, timeout_s: float = 5.0):
        return connect(self.port, self._password, timeout_s)

    def env(self) -> dict[str, str]:
        """The broker's environment: where each of its files goes, its ports and its node name."""
        folder = str(self.folder)
        return {"HOME": folder, "TMPDIR": folder,
                "RABBITMQ_NODENAME": NODE, "RABBITMQ_NODE_IP_ADDRESS": LOOPBACK, "RABBITMQ_NODE_PORT": str(self.port),
                "RABBITMQ_DIST_PORT": str(self.dist_port),
                "ERL_EPMD_ADDRESS": LOOPBACK, "ERL_EPMD_PORT": str(self.epmd_port),
                "RABBITMQ_CONFIG_FILE": str(self.config_file),
                "RABBITMQ_ADVANCED_CONFIG_FILE": f"{folder}/advanced.config",
                "RABBITMQ_CONF_ENV_FILE": f"{folder}/rabbitmq-env.conf",
                "RABBITMQ_ENABLED_PLUGINS_FILE": f"{folder}/enabled_plugins",
                "RABBITMQ_MNESIA_BASE": f"{folder}/mnesia", "RABBITMQ_LOG_BASE": f"{folder}/log",
                "RABBITMQ_LOGS": "-",
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}"}

    def start(self) -> None:
        """Start the broker and wait until it accepts AMQP connections."""
        self.begin()
        self.wait_ready()

    def begin(self) -> None:
        """Start epmd and the broker without waiting for the broker's boot (several seconds), which the lab spends
        on work that does not need it; wait_ready() ends the wait. A restart keeps its ports: the site and the
        workers know them."""
        self.stop()
        self._fresh_port = self.port is None
        self.port = self.port or free_port()
        self.dist_port = self.dist_port or free_port()
        self.epmd_port = self.epmd_port or free_port()
        owner = SERVER_USER if server_user.running_as_root() else None
        server_user.server_folder(self.lab, self.folder, SERVER_USER)
        if self._password is None:
            self._password = self._password_of_the_broker() or secrets.token_urlsafe(24)
        write_config(self.config_file, self.port, self._password, owner)
        server_user.private_file(self.folder / "enabled_plugins", "[].\n", owner)
        as_user = server_user.as_server_user(SERVER_USER)
        env = self.env()
        epmd = self.lab.spawn("epmd", [*as_user, epmd_executable(), "-address", LOOPBACK, "-port", self.epmd_port],
                              keep_env=SERVER_ENVIRONMENT)
        epmd.wait_until(lambda: epmd.listens_on(self.epmd_port), what="listening")
        self.lab.spawn("rabbitmq", [*as_user, executable()], env=env, keep_env=(*SERVER_ENVIRONMENT, *env))

    def wait_ready(self) -> None:
        """Wait until the broker begun accepts AMQP connections. A port picked free a moment ago that another
        process took before the broker bound it: the broker starts again once, on new ports."""
        broker = self.lab.processes["rabbitmq"]
        try:
            broker.wait_until(lambda: answers(self.port, self._password), timeout=START_TIMEOUT_S,
                              what="accepting AMQP connections")
        except ProcessFailed as failure:
            if not (self._fresh_port and "eaddrinuse" in str(failure)):
                raise
            self.port = self.dist_port = self.epmd_port = None
            self.start()

    def stop(self) -> None:
        self.lab.stop_process("rabbitmq")
        self.lab.stop_process("epmd")

    def _password_of_the_broker(self) -> str | None:
        """The password an earlier lab in this run folder gave the broker whose data is there (made on its first
        boot, kept by the data); None for a new data folder."""
        if not (self.folder / "mnesia").exists():
            return None
        try:
            return re.search(r"^default_pass = (.+)$", self.config_file.read_text(), re.M).group(1)
        except (FileNotFoundError, AttributeError):
            raise RuntimeError(f"{self.folder / 'mnesia'} holds a broker's data but {self.config_file} no password "
                               f"for it: remove the run folder's rabbitmq/ to start afresh") from None


class UsesRabbitMQ(UsesServer):
    """Mixed into a queue backend that keeps its queue in the run's RabbitMQ broker, as one AMQP queue
    (`queue_name`): its depth is the queue's ready messages."""

    servers = ("rabbitmq",)
    server_class = RabbitMQServer
    queue_name: ClassVar[str]

    @property
    def broker(self) -> RabbitMQServer:
        return self.server

    def begin_servers(self) -> None:
        """The broker boots while the lab migrates the site's database (SQLite: it does not need the broker)."""
        self.broker.begin()

    def servers_ready(self) -> None:
        self.broker.wait_ready()

    def site_env(self) -> dict[str, str]:
        return {**super().site_env(), "LAB_AMQP_URL": self.broker.url}

    @contextlib.contextmanager
    def connection(self):
        with contextlib.closing(self.broker.connect()) as conn:
            yield conn

    def read_depth(self, conn) -> int:
        return ready_messages(conn, self.queue_name)

    @property
    def location(self) -> str:
        return self.broker.location
