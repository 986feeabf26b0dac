"""VMware's official vSphere Automation SDK (vmware-vapi-runtime and
vmware-vapi-common-client 9.1.1.0, unmodified, public classes only) against a
tower-cis server.

Usage: python sdk_session_tasks.py BASE_URL USER PASSWORD
Prints one line per check and exits non-zero on the first failure.
"""
import sys
import time

import requests
from com.vmware.cis.task_client import Status
from com.vmware.cis_client import Session, Tasks
from com.vmware.vapi.std.errors_client import (NotAllowedInCurrentState, NotFound, Unauthenticated,
                                               Unsupported, Canceled)
from vmware.vapi.lib.connect import get_requests_connector
from vmware.vapi.security.session import create_session_security_context
from vmware.vapi.security.user_password import create_user_password_security_context
from vmware.vapi.stdlib.client.factories import StubConfigurationFactory

base, user, password = sys.argv[1:4]


def check(name, condition):
    if not condition:
        print("FAILED:", name, flush=True)
        sys.exit(1)
    print("ok:", name, flush=True)


def expect_raises(name, error_class, call):
    try:
        call()
    except error_class:
        print("ok:", name, flush=True)
        return
    except Exception as other:  # noqa: BLE001 - report what came instead
        print("FAILED:", name, "raised", type(other).__name__, other, flush=True)
        sys.exit(1)
    print("FAILED:", name, "did not raise", error_class.__name__, flush=True)
    sys.exit(1)


http = requests.Session()
http.trust_env = False
connector = get_requests_connector(session=http, url=base + "/api")
config = StubConfigurationFactory.new_std_configuration(connector)

# A wrong password raises Unauthenticated.
connector.set_security_context(create_user_password_security_context(user, password + "-wrong"))
expect_raises("wrong password raises Unauthenticated", Unauthenticated, lambda: Session(config).create())

# Log in, read the session.
connector.set_security_context(create_user_password_security_context(user, password))
session_id = Session(config).create()
check("create returns a 32-hex session id", len(session_id) == 32)
connector.set_security_context(create_session_security_context(session_id))
info = Session(config).get()
check("get names the user", info.user == user)
check("get has created and last accessed times", info.created_time is not None and info.last_accessed_time >= info.created_time)

# Demo tasks, started over REST with the same session.
headers = {"vmware-api-session-id": session_id}
def start(path):
    answer = http.post(base + path, headers=headers)
    answer.raise_for_status()
    return answer.json()

quick = start("/api/demo/wait?seconds=0&vmw-task=true")
slow = start("/api/demo/wait?seconds=300&vmw-task=true")
failing = start("/api/demo/fail?seconds=0&vmw-task=true")
stubborn = start("/api/demo/fail?seconds=300&vmw-task=true")
tasks = Tasks(config)

def wait_for(task, statuses):
    deadline = time.time() + 20
    while time.time() < deadline:
        current = tasks.get(task)
        if current.status in statuses:
            return current
        time.sleep(0.05)
    print("FAILED: task", task, "never reached", statuses, flush=True)
    sys.exit(1)

done = wait_for(quick, [Status.SUCCEEDED])
check("get of a succeeded task has start and end time", done.start_time is not None and done.end_time is not None)
check("get of a succeeded task has its result", done.result is not None)
check("the task belongs to the user", done.user == user)
running = wait_for(slow, [Status.RUNNING])
check("get of a running task has progress", running.progress is not None and running.progress.total >= running.progress.completed)
failed = wait_for(failing, [Status.FAILED])
check("get of a failed task has its error", failed.error is not None)

listed = tasks.list(Tasks.FilterSpec(services={"com.vmware.cis.demo"}))
check("list returns the demo tasks", {quick, slow, failing, stubborn} <= set(listed.keys()))
only_running = tasks.list(Tasks.FilterSpec(services={"com.vmware.cis.demo"}, status={Status.RUNNING}))
check("list filters by status", slow in only_running and quick not in only_running)
check("list can exclude results", tasks.list(Tasks.FilterSpec(tasks={quick}), Tasks.GetSpec(exclude_result=True))[quick].result is None)

tasks.cancel(slow)
cancelled = tasks.get(slow)
check("a cancelled task is FAILED", cancelled.status == Status.FAILED)
check("a cancelled task's error is Canceled", isinstance(cancelled.error, Canceled))
expect_raises("cancel of a finished task raises NotAllowedInCurrentState", NotAllowedInCurrentState, lambda: tasks.cancel(slow))
wait_for(stubborn, [Status.RUNNING])
expect_raises("cancel of a non-cancelable task raises Unsupported", Unsupported, lambda: tasks.cancel(stubborn))
expect_raises("get of an unknown task raises NotFound", NotFound,
              lambda: tasks.get("8dcf9711-bb6d-47c5-892d-a0e6bef98249:com.vmware.cis.demo"))

# Log out.
Session(config).delete()
expect_raises("get after delete raises Unauthenticated", Unauthenticated, lambda: Session(config).get())
expect_raises("tasks after delete raise Unauthenticated", Unauthenticated, lambda: tasks.get(quick))
print("SDK checks passed", flush=True)
