#!/usr/bin/env python3
"""Socket churn for tests/churn.rs: processes that open sockets, fork, pass sockets to each
other over unix sockets (SCM_RIGHTS), exec, and exit abruptly, for DURATION seconds.

Every process writes a line `PID INODE` to LOG for each inet or unix socket it holds, right
after every change that could give it one (its start, socket, accept, connect, a received
descriptor), so once all are gone the log holds every (pid, inode) pair that ever was. A line
`PORT N` names a listener's port. Writes are single O_APPEND writes, so lines never interleave.

Usage: churn_worker.py LOG DURATION SEED
"""

import array
import os
import random
import signal
import socket
import sys
import time

LOG, DURATION, SEED = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
log_fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)


def log(line):
    os.write(log_fd, (line + "\n").encode())


def log_held():
    """Logs every socket this process holds now."""
    pid = os.getpid()
    lines = []
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink("/proc/self/fd/" + name)
        except OSError:
            continue
        if target.startswith("socket:["):
            lines.append("%d %s" % (pid, target[8:-1]))
    if lines:
        os.write(log_fd, ("\n".join(lines) + "\n").encode())


def listener(rng):
    if rng.random() < 0.7:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 0))
        s.listen(64)
    else:
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.bind(("::1", 0))
    log("PORT %d" % s.getsockname()[1])
    return s


def send_fds(channel, sockets):
    fds = array.array("i", [s.fileno() for s in sockets])
    try:
        channel.sendmsg([b"x"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
        return True
    except OSError:
        return False


def receiver(channel, rng):
    """A child that takes sockets passed to it, holds them a while, and ends abruptly."""
    held = []
    deadline = time.monotonic() + rng.uniform(0.2, 2.0)
    channel.settimeout(0.05)
    while time.monotonic() < deadline:
        try:
            _, ancillary, _, _ = channel.recvmsg(1, socket.CMSG_SPACE(64 * 4))
        except socket.timeout:
            continue
        except OSError:
            break
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds = array.array("i")
                fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
                held.extend(socket.socket(fileno=fd) for fd in fds)
        log_held()
        if len(held) > 8:
            held.pop(0).close()
    end(rng)


def worker(rng, sockets):
    """A forked child: it holds what it inherited, makes a connection of its own, maybe execs."""
    own = []
    for s in sockets:
        if s.type == socket.SOCK_STREAM and rng.random() < 0.5:
            try:
                c = socket.create_connection(s.getsockname()[:2], timeout=0.2)
                own.append(c)
                a, _ = s.accept()
                own.append(a)
            except OSError:
                pass
            break
    log_held()
    time.sleep(rng.uniform(0.0, 0.5))
    if rng.random() < 0.3:
        # exec keeps the pid and the inheritable descriptors: the same holder, a new name.
        for s in sockets + own:
            os.set_inheritable(s.fileno(), True)
        os.execvp("sleep", ["sleep", "%.2f" % rng.uniform(0.05, 0.4)])
    end(rng)


def end(rng):
    if rng.random() < 0.5:
        os.kill(os.getpid(), signal.SIGKILL)
    os._exit(0)


def main():
    rng = random.Random(SEED)
    sockets = []
    children = {}
    channels = []
    deadline = time.monotonic() + DURATION
    log_held()
    while time.monotonic() < deadline:
        roll = rng.random()
        if roll < 0.25 or not sockets:
            sockets.append(listener(rng))
            log_held()
        elif roll < 0.45 and len(children) < 24:
            share = rng.sample(sockets, min(len(sockets), rng.randint(1, 4)))
            parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
            pid = os.fork()
            if pid == 0:
                child_rng = random.Random(rng.random() + os.getpid())
                log_held()
                parent_end.close()
                if child_rng.random() < 0.5:
                    receiver(child_end, child_rng)
                worker(child_rng, share)
            child_end.close()
            children[pid] = parent_end
            channels.append(parent_end)
        elif roll < 0.65 and channels:
            channel = rng.choice(channels)
            if not send_fds(channel, rng.sample(sockets, min(len(sockets), 3))):
                channels.remove(channel)
                channel.close()
        elif roll < 0.75:
            s = rng.choice(sockets)
            if s.type == socket.SOCK_STREAM:
                try:
                    c = socket.create_connection(s.getsockname()[:2], timeout=0.2)
                    # Kept even if the accept fails: an unlogged socket that a child then
                    # inherits would look like a misattribution.
                    sockets.append(c)
                    a, _ = s.accept()
                    sockets.append(a)
                except OSError:
                    pass
                finally:
                    log_held()
        elif len(sockets) > 40 or roll < 0.85:
            sockets.pop(rng.randrange(len(sockets))).close()
        for pid in list(children):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                channel = children.pop(pid)
                if channel in channels:
                    channels.remove(channel)
                channel.close()
        time.sleep(0.002)
    # Every child ends by itself within about 2.5 s; killing one here could end it before it
    # logged what it inherited, and a scan that saw it would look like a misattribution.
    for pid in children:
        try:
            os.waitpid(pid, 0)
        except OSError:
            pass
    log("DONE")


main()
