//! `jobs artifacts ID [-o DIR]`: download a job's collected artifacts and
//! extract them into DIR, streaming, refusing anything that would land
//! outside it.

use crate::args::ArtifactsArgs;
use crate::commands::Context;
use crate::error::CliError;
use crate::{archive, output, progress};

pub async fn artifacts(context: &Context, args: ArtifactsArgs) -> Result<u8, CliError> {
    let job = context.client.get_job(&args.id).await?;
    if !job.state.is_terminal() && !job.artifact_paths.is_empty() {
        return Err(CliError::UnexpectedAnswer(format!(
            "job {} is {}: its artifacts are collected when it ends ({} wait {})",
            job.id,
            job.state,
            crate::shell::command_name(),
            job.id
        )));
    }
    std::fs::create_dir_all(&args.output).map_err(|err| {
        CliError::LocalOutput(format!("creating {}: {err}", args.output.display()))
    })?;
    let mut downloaded = Vec::new();
    for (index, artifact) in job.artifacts.iter().enumerate() {
        if let Some(error) = &artifact.error {
            output::warn_artifact_not_collected(&artifact.path, error);
            continue;
        }
        let response = context.client.open_artifact(&job.id, index).await?;
        let bar = progress::transfer_bar(
            &format!("artifact {}", artifact.path),
            artifact.size.map(|s| s as u64),
        );
        let counted = {
            let bar = bar.clone();
            futures::StreamExt::map(response.bytes_stream(), move |chunk| {
                if let Ok(chunk) = &chunk {
                    bar.inc(chunk.len() as u64);
                }
                chunk.map_err(std::io::Error::other)
            })
        };
        let reader = tokio_util::io::StreamReader::new(counted);
        let target = args.output.clone();
        let extracted = tokio::task::spawn_blocking(move || {
            archive::extract_safely(tokio_util::io::SyncIoBridge::new(reader), &target)
        })
        .await
        .map_err(|err| CliError::LocalOutput(err.to_string()))?;
        bar.finish_and_clear();
        let extracted = extracted
            .map_err(|err| CliError::LocalOutput(format!("artifact {}: {err}", artifact.path)))?;
        downloaded.push((artifact, extracted));
    }
    output::print_artifacts_downloaded(context.format, &args.output, &downloaded)?;
    Ok(0)
}
