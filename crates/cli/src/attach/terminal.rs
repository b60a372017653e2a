//! The local terminal of a TTY session: raw mode, and its size.
//!
//! Raw mode hands every key to the container as a byte (Ctrl-C is 0x03,
//! which the container's own terminal turns into SIGINT) and writes the
//! container's output unchanged (its terminal already turned `\n` into
//! `\r\n`). The settings from before are put back by [`RawMode`]'s drop on
//! every way out of a session, and by a panic hook when a panic unwinds
//! past it or aborts; a SIGTERM or SIGHUP is handled by the session, which
//! then returns normally.

use std::io;
use std::os::fd::RawFd;
use std::sync::{Mutex, Once};

use jobs_core::attach::WindowSize;

/// The terminal settings to put back, and on which descriptor. Global so
/// that the panic hook can reach them.
static SAVED: Mutex<Option<(RawFd, libc::termios)>> = Mutex::new(None);
static PANIC_HOOK: Once = Once::new();

/// Raw mode on a terminal for as long as this value lives.
#[derive(Debug)]
pub struct RawMode {
    _not_send: std::marker::PhantomData<*const ()>,
}

impl RawMode {
    /// Puts the terminal on `fd` in raw mode.
    pub fn enter(fd: RawFd) -> io::Result<RawMode> {
        // SAFETY: termios is plain data; tcgetattr fills it or fails.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: a valid pointer to a termios owned by this frame.
        if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
            return Err(io::Error::last_os_error());
        }
        install_panic_hook();
        let mut raw = saved;
        // SAFETY: cfmakeraw only edits the struct it is given.
        unsafe { libc::cfmakeraw(&mut raw) };
        *SAVED
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some((fd, saved));
        // SAFETY: a valid termios for a descriptor that tcgetattr accepted.
        if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &raw) } != 0 {
            let err = io::Error::last_os_error();
            restore();
            return Err(err);
        }
        Ok(RawMode {
            _not_send: std::marker::PhantomData,
        })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        restore();
    }
}

/// Puts back the settings saved by [`RawMode::enter`], once.
fn restore() {
    let saved = SAVED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .take();
    if let Some((fd, termios)) = saved {
        // What the session wrote must reach the terminal under the raw
        // settings it was meant for, before the settings change.
        let _ = io::Write::flush(&mut io::stdout());
        // SAFETY: the termios tcgetattr returned for this descriptor.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &termios) };
    }
}

/// A panic message printed in raw mode would staircase across the screen
/// and leave the shell unusable: put the terminal back first.
fn install_panic_hook() {
    PANIC_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
    });
}

/// Whether `fd` is a terminal.
pub fn is_terminal(fd: RawFd) -> bool {
    // SAFETY: isatty only looks at the descriptor.
    unsafe { libc::isatty(fd) == 1 }
}

/// The size of the terminal on `fd`, if it is one and knows its size.
pub fn window_size(fd: RawFd) -> Option<WindowSize> {
    // SAFETY: winsize is plain data that TIOCGWINSZ fills.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes one winsize through the pointer.
    if unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut size) } != 0 {
        return None;
    }
    (size.ws_row > 0 && size.ws_col > 0).then_some(WindowSize {
        rows: size.ws_row,
        cols: size.ws_col,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pipe_is_no_terminal_and_has_no_size() {
        let mut fds = [0; 2];
        // SAFETY: pipe fills two descriptors that this test closes.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        assert!(!is_terminal(fds[0]));
        assert_eq!(window_size(fds[0]), None);
        assert!(RawMode::enter(fds[0]).is_err());
        // SAFETY: our own descriptors, closed once.
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
    }
}
