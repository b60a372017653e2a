//! Ctrl-C while following a job: stop following and leave the job running.

use std::future::Future;

#[derive(Debug)]
pub enum UnlessDetached<T> {
    Completed(T),
    /// The user pressed Ctrl-C before the work completed.
    Detached,
}

/// Runs `work` until it completes or the user presses Ctrl-C.
///
/// If the Ctrl-C handler cannot be installed, the work simply runs to the
/// end, and Ctrl-C keeps its default effect of ending the process.
pub async fn unless_ctrl_c<F: Future>(work: F) -> UnlessDetached<F::Output> {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        output = work => UnlessDetached::Completed(output),
        () = ctrl_c => UnlessDetached::Detached,
    }
}
