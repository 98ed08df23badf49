//! The bench's measuring process: runs one command and reports its wall time and its own peak
//! RSS. `cargo xtask bench` compiles this file on its own (`rustc -C opt-level=3`, std only) and
//! starts every timed command through it; in xtask's tests it is a module, so that fmt, clippy
//! and the tests see it.
//!
//! ```text
//! measure PROGRAM [ARGS...]
//! wall_ns=2315021 status=0 maxrss_kib=3160 user_us=812 sys_us=1203
//! ```
//!
//! The command's stdin and stderr are the measurer's, its stdout is /dev/null; the report is the
//! one line on the measurer's stdout. `status` is the exit status, or 128 + the signal. PROGRAM
//! is run as given (no PATH search).
//!
//! Why a process of its own: on Linux a child's `ru_maxrss` starts at the memory it had before
//! exec. `dup_mm` (kernel/fork.c) sets a forked child's `hiwater_rss` to the RSS of its copy of
//! the parent, and `exec_mmap` (fs/exec.c) folds the old mm's hiwater into `signal->maxrss`,
//! which `wait4` reports for the child. With `posix_spawn`/vfork (Rust's `Command`) the old mm
//! is the parent's own, so the floor is the parent's peak; `getrusage(RUSAGE_CHILDREN)` takes
//! the same values. So the process that forks must be small: this one is a ~2 MiB process (most
//! of it shared library text) that forks with `fork(2)`, which copies only the page tables of
//! its ~120 KiB of anonymous memory (mappings of files it never wrote are not copied), and
//! execs at once. `/bin/true` measured through it peaks at ~1 MiB, its own size.
//!
//! Timing is from the child's last step before `execv` (it sends its `CLOCK_MONOTONIC` time down
//! a pipe) to the return of `wait4` in this process: exec, the command's run, its exit and its
//! reaping. The fork, and the child's wait for a CPU after it, are left out (the fork of even a
//! small process costs more than the vfork of `posix_spawn`); what is left is the same for every
//! command.

use std::ffi::{CString, OsString, c_char, c_int, c_long};
use std::fs::OpenOptions;
use std::io::{self, Read as _, Write as _};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::process::ExitCode;
use std::time::Duration;

/// `struct rusage` of Linux (glibc and musl, 64-bit and 32-bit with 32-bit `time_t`): two
/// `struct timeval`s, then fourteen `long`s, `ru_maxrss` (KiB) first.
#[repr(C)]
struct Rusage {
    utime: [c_long; 2],
    stime: [c_long; 2],
    maxrss: c_long,
    rest: [c_long; 13],
}

/// `struct timespec`.
#[repr(C)]
#[derive(Clone, Copy)]
struct Timespec {
    sec: c_long,
    nsec: c_long,
}

const CLOCK_MONOTONIC: c_int = 1;

impl Timespec {
    fn now() -> Timespec {
        let mut now = Timespec { sec: 0, nsec: 0 };
        // SAFETY: a valid pointer; async-signal-safe.
        unsafe { clock_gettime(CLOCK_MONOTONIC, &mut now) };
        now
    }

    fn nanos(self) -> i128 {
        i128::from(self.sec) * 1_000_000_000 + i128::from(self.nsec)
    }
}

unsafe extern "C" {
    fn clock_gettime(clock: c_int, time: *mut Timespec) -> c_int;
    fn fork() -> c_int;
    fn execv(path: *const c_char, argv: *const *const c_char) -> c_int;
    fn dup2(old: c_int, new: c_int) -> c_int;
    fn write(fd: c_int, buf: *const u8, count: usize) -> isize;
    fn _exit(status: c_int) -> !;
    fn wait4(pid: c_int, status: *mut c_int, options: c_int, usage: *mut Rusage) -> c_int;
}

/// One measured run.
#[derive(Debug, PartialEq)]
pub struct Report {
    pub wall: Duration,
    /// Exit status, or 128 + signal.
    pub status: i32,
    pub maxrss_kib: u64,
    pub user: Duration,
    pub sys: Duration,
}

impl Report {
    /// The line this program prints.
    pub fn line(&self) -> String {
        format!(
            "wall_ns={} status={} maxrss_kib={} user_us={} sys_us={}",
            self.wall.as_nanos(),
            self.status,
            self.maxrss_kib,
            self.user.as_micros(),
            self.sys.as_micros()
        )
    }
}

/// Forks, makes stdout /dev/null, execs `program` with `args`, reaps it with `wait4`.
pub fn run(program: &OsString, args: &[OsString]) -> io::Result<Report> {
    let cstring = |arg: &OsString| {
        CString::new(arg.as_bytes()).map_err(|_| io::Error::other("an argument holds a NUL byte"))
    };
    // Everything the child needs is ready before the fork: it only calls dup2, clock_gettime,
    // write, execv and _exit.
    let argv: Vec<CString> = std::iter::once(program)
        .chain(args)
        .map(cstring)
        .collect::<io::Result<_>>()?;
    let mut pointers: Vec<*const c_char> = argv.iter().map(|arg| arg.as_ptr()).collect();
    pointers.push(std::ptr::null());
    let failed = format!("measure: cannot execute {}\n", program.to_string_lossy());
    // Opened close-on-exec; dup2 gives the child a copy without the flag.
    let null = OpenOptions::new().write(true).open("/dev/null")?;
    let null = null.as_raw_fd();
    // Close-on-exec both ends: the command never sees them.
    let (mut exec_time_reader, exec_time_writer) = io::pipe()?;

    // SAFETY: this process is single-threaded, and the child only makes async-signal-safe calls
    // on memory prepared above.
    let pid = unsafe { fork() };
    if pid == 0 {
        // SAFETY: see above; argv and its pointers outlive the exec.
        unsafe {
            dup2(null, 1);
            let now = Timespec::now();
            write(
                exec_time_writer.as_raw_fd(),
                (&raw const now).cast(),
                size_of::<Timespec>(),
            );
            execv(pointers[0], pointers.as_ptr());
            write(2, failed.as_ptr(), failed.len());
            _exit(127);
        }
    }
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    // The child's copy is the only one left: should it die before writing, the read ends.
    drop(exec_time_writer);
    let mut status: c_int = 0;
    // SAFETY: rusage is plain data; zeroed is a valid value.
    let mut usage: Rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: valid pointers; pid is this process's unreaped child.
        if unsafe { wait4(pid, &mut status, 0, &mut usage) } == pid {
            break;
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
    let reaped = Timespec::now();
    let mut exec = Timespec { sec: 0, nsec: 0 };
    // SAFETY: Timespec is plain data, any bytes are a valid value; the slice covers exactly it.
    let exec_bytes = unsafe {
        std::slice::from_raw_parts_mut((&raw mut exec).cast::<u8>(), size_of::<Timespec>())
    };
    exec_time_reader.read_exact(exec_bytes)?;
    let wall = Duration::from_nanos(u64::try_from(reaped.nanos() - exec.nanos()).unwrap_or(0));
    let timeval = |tv: [c_long; 2]| {
        Duration::from_secs(tv[0].max(0) as u64) + Duration::from_micros(tv[1].max(0) as u64)
    };
    Ok(Report {
        wall,
        // WIFEXITED / WEXITSTATUS / WTERMSIG.
        status: if status & 0x7f == 0 {
            (status >> 8) & 0xff
        } else {
            128 + (status & 0x7f)
        },
        maxrss_kib: usage.maxrss.max(0) as u64,
        user: timeval(usage.utime),
        sys: timeval(usage.stime),
    })
}

// In xtask's tests this file is a module whose `main` is not called.
#[cfg_attr(test, allow(dead_code))]
fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let Some(program) = args.next() else {
        eprintln!("usage: measure PROGRAM [ARGS...]");
        return ExitCode::from(125);
    };
    let args: Vec<OsString> = args.collect();
    match run(&program, &args) {
        Ok(report) => {
            let mut stdout = io::stdout().lock();
            match writeln!(stdout, "{}", report.line()).and_then(|()| stdout.flush()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(_) => ExitCode::from(125),
            }
        }
        Err(error) => {
            eprintln!("measure: {}: {error}", program.to_string_lossy());
            ExitCode::from(125)
        }
    }
}
