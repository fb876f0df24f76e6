//! The inotify descriptor the follower waits on (directory events), without a crate.

#[allow(unused_imports)]
use super::*;

/// A minimal inotify handle on directories (libc; no extra crate for four calls).
pub(super) struct Inotify {
    pub(super) fd: std::os::fd::OwnedFd,
}

impl Inotify {
    pub(super) fn new() -> std::io::Result<Self> {
        use std::os::fd::FromRawFd;
        // SAFETY: plain syscall; the returned descriptor is owned here.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor nobody else owns.
        Ok(Inotify {
            fd: unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) },
        })
    }

    pub(super) fn watch(&self, dir: &Path) -> std::io::Result<()> {
        use std::os::fd::AsRawFd;
        let c = CString::new(dir.as_os_str().as_bytes())
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
        let mask = libc::IN_MODIFY
            | libc::IN_CREATE
            | libc::IN_MOVED_FROM
            | libc::IN_MOVED_TO
            | libc::IN_DELETE
            | libc::IN_CLOSE_WRITE
            | libc::IN_ATTRIB;
        // SAFETY: c is a valid NUL-terminated path; the fd is ours.
        let wd = unsafe { libc::inotify_add_watch(self.fd.as_raw_fd(), c.as_ptr(), mask) };
        if wd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits until something happens in a watched directory or `limit` passes, then drains
    /// the queue (the events themselves are not needed: every file is looked at).
    pub(super) fn wait(&self, limit: Duration) {
        use std::os::fd::AsRawFd;
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let _ = unsafe { libc::poll(&mut pfd, 1, limit.as_millis() as libc::c_int) };
        let mut buf = [0u8; 4096];
        loop {
            // SAFETY: buf is valid for its length; the fd is non-blocking.
            let n = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr() as *mut libc::c_void,
                    buf.len(),
                )
            };
            if n <= 0 {
                break;
            }
        }
        // Writers append in bursts: a short pause lets one look take a whole burst.
        std::thread::sleep(Duration::from_millis(2));
    }
}
