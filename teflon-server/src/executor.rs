//! Executes planned actions: at most `max_concurrent_actions` at once, actions on the same
//! pod strictly one after another in decision order, every outcome sent back to the engine
//! task.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use teflon_core::{Clock, DynActuator, Executed, Outcome, PlannedAction};
use tokio::sync::{Semaphore, mpsc};
use tracing::Instrument;

/// An executed action.
#[derive(Debug)]
pub struct Done {
    /// The action.
    pub plan: PlannedAction,
    /// How it went.
    pub outcome: Outcome,
    /// Attempts of its API calls (`1 + retries`).
    pub attempts: u32,
    /// When the call finished.
    pub acted_at: teflon_core::Timestamp,
}

type PodQueues = HashMap<(String, String), VecDeque<PlannedAction>>;

/// Runs actions against the actuator.
#[derive(Clone)]
pub struct Executor {
    actuator: Arc<dyn DynActuator>,
    permits: Arc<Semaphore>,
    pods: Arc<Mutex<PodQueues>>,
    done: mpsc::UnboundedSender<Done>,
    clock: Clock,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("available_permits", &self.permits.available_permits())
            .finish_non_exhaustive()
    }
}

impl Executor {
    /// An executor running at most `concurrency` actions at once.
    pub fn new(
        actuator: Arc<dyn DynActuator>,
        concurrency: usize,
        clock: Clock,
    ) -> (Executor, mpsc::UnboundedReceiver<Done>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Executor {
                actuator,
                permits: Arc::new(Semaphore::new(concurrency.max(1))),
                pods: Arc::new(Mutex::new(HashMap::new())),
                done: tx,
                clock,
            },
            rx,
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PodQueues> {
        self.pods
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Start `plan` (or queue it behind earlier actions on the same pod).
    pub fn submit(&self, plan: PlannedAction) {
        let key = (plan.pod.namespace.clone(), plan.pod.name.clone());
        {
            let mut pods = self.lock();
            if let Some(q) = pods.get_mut(&key) {
                q.push_back(plan);
                return;
            }
            pods.insert(key.clone(), VecDeque::new());
        }
        let this = self.clone();
        let span = tracing::info_span!("pod_actions", namespace = %key.0, pod = %key.1);
        tokio::spawn(
            async move {
                let mut next = Some(plan);
                while let Some(plan) = next.take() {
                    this.run_one(plan).await;
                    let mut pods = this.lock();
                    match pods.get_mut(&key).and_then(VecDeque::pop_front) {
                        Some(p) => next = Some(p),
                        None => {
                            pods.remove(&key);
                        }
                    }
                }
            }
            .instrument(span),
        );
    }

    async fn run_one(&self, plan: PlannedAction) {
        let Executed { outcome, attempts } = match self.permits.clone().acquire_owned().await {
            Ok(_permit) => self.actuator.execute_boxed(&plan).await,
            Err(_) => Outcome::Failed("executor closed".to_owned()).into(),
        };
        let acted_at = (self.clock)();
        match &outcome {
            Outcome::Failed(why) => {
                tracing::warn!(action = %plan.action.kind(), pod = %plan.pod.name, %why, "action failed")
            }
            o => {
                tracing::info!(action = %plan.action.kind(), pod = %plan.pod.name, outcome = %o, "action done")
            }
        }
        let _ = self.done.send(Done {
            plan,
            outcome,
            attempts,
            acted_at,
        });
    }
}
