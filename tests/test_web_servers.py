"""The web servers of helpers.stack.web: each one's command line, and on a real start that every worker loaded the
site before the lab calls it ready."""

import psutil
import pytest

from helpers.stack import Lab, LabConfig
from helpers.stack.web import server_names, web_server_class

# LabConfig's web_server and web_worker_class, the class's label, whether it closes every connection
SERVERS = [("gunicorn", "sync", "gunicorn sync", True), ("gunicorn", "gthread", "gunicorn gthread", False),
           ("uvicorn", "sync", "uvicorn", False)]


def argv_of(server: str, worker_class: str, **config) -> list[str]:
    config = LabConfig(web_server=server, web_worker_class=worker_class, **config)
    return [str(a) for a in web_server_class(server, worker_class)(config).argv(12345)]


def option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_lab_config_refuses_an_unknown_server_or_worker_class():
    assert server_names() == ["gunicorn", "uvicorn"]
    with pytest.raises(ValueError, match="web_server='daphne'"):
        LabConfig(web_server="daphne")
    with pytest.raises(ValueError, match="web_worker_class='eventlet'"):
        LabConfig(web_server="gunicorn", web_worker_class="eventlet")


def test_gunicorn_serves_the_wsgi_site_on_loopback_with_threads_only_for_gthread():
    sync = argv_of("gunicorn", "sync", web_workers=3, web_threads=4)
    assert sync[1:4] == ["-m", "gunicorn", "labsite.wsgi:application"]
    assert option(sync, "--bind") == "127.0.0.1:12345" and option(sync, "--workers") == "3"
    assert option(sync, "--worker-class") == "sync" and "--threads" not in sync  # gunicorn would switch to gthread
    threaded = argv_of("gunicorn", "gthread", web_workers=3, web_threads=4)
    assert option(threaded, "--worker-class") == "gthread" and option(threaded, "--threads") == "4"


def test_uvicorn_serves_the_asgi_site_on_loopback_with_the_workers_and_limit_asked():
    argv = argv_of("uvicorn", "sync", web_workers=3, web_limit_concurrency=50)
    assert argv[1:4] == ["-m", "uvicorn", "labsite.asgi:application"]
    assert option(argv, "--host") == "127.0.0.1" and option(argv, "--port") == "12345"
    assert option(argv, "--workers") == "3" and option(argv, "--limit-concurrency") == "50"
    assert "--limit-concurrency" not in argv_of("uvicorn", "sync")


@pytest.mark.stack
@pytest.mark.parametrize(("server", "worker_class", "label", "closes_connections"), SERVERS)
def test_every_worker_has_loaded_the_site_when_the_lab_is_ready(server, worker_class, label, closes_connections):
    """Ready means each worker process loaded the site (counted by the server's own sign), not only that the port
    answers; gunicorn's sync workers close every connection, gthread and uvicorn keep it."""
    with Lab(web_server=server, web_worker_class=worker_class, web_workers=2, web_threads=2,
             queue_backend="djtasks_immediate", smtp_delay_s=0) as lab:
        process = lab.processes["web"]
        assert lab.web.workers_started(process, process.log_text()) == 2
        assert len(process.descendants()) >= 2
        assert lab.listening_sockets() == {lab.web_port: "127.0.0.1", lab.smtp_port: "127.0.0.1",
                                           lab.smtp_status_port: "127.0.0.1"}
        response = lab.http.get("/noop/")
        assert response.status == 200
        assert (response.getheader("Connection") == "close") == closes_connections
        assert lab.web.label == label
        assert named_unix_sockets(lab) == []  # gunicorn's control socket (~/.gunicorn/gunicorn.ctl) stays off
        web = lab.processes.pop("web")
        assert web.stop() == 0  # the workers' quick exit keeps the master's status


def named_unix_sockets(lab: Lab) -> list[str]:
    """Paths of the unix sockets the lab's processes hold (socketpairs have none)."""
    return [c.laddr for pid in lab.pids() for c in psutil.Process(pid).net_connections(kind="unix") if c.laddr]
