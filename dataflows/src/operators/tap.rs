//! A tap on a stream: every batch passes through untouched (moved, not copied), and copies of
//! the records a predicate keeps come out beside it. A second consumer of a stream would make
//! timely copy every batch for it; a tap copies only what the side stream wants.

use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::Stream;

/// Extension trait for [`Tap::tap`].
pub trait Tap<'scope, D> {
    /// The stream itself, and copies of the records `keep` accepts, at the same times.
    #[allow(clippy::type_complexity)]
    fn tap(
        self,
        name: &str,
        keep: impl Fn(&D) -> bool + 'static,
    ) -> (Stream<'scope, u64, Vec<D>>, Stream<'scope, u64, Vec<D>>);
}

impl<'scope, D: Clone + 'static> Tap<'scope, D> for Stream<'scope, u64, Vec<D>> {
    fn tap(
        self,
        name: &str,
        keep: impl Fn(&D) -> bool + 'static,
    ) -> (Stream<'scope, u64, Vec<D>>, Stream<'scope, u64, Vec<D>>) {
        let mut builder = OperatorBuilder::new(name.to_owned(), self.scope());
        let mut input = builder.new_input(self, Pipeline);
        let (through_out, through) = builder.new_output::<Vec<D>>();
        let (kept_out, kept) = builder.new_output::<Vec<D>>();
        let mut through_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<D>>>::from(through_out);
        let mut kept_out = OutputBuilder::<_, CapacityContainerBuilder<Vec<D>>>::from(kept_out);
        builder.build(move |mut caps| {
            caps.clear();
            move |_frontiers| {
                input.for_each(|cap, data| {
                    let time = *cap.least().expect("a totally ordered time");
                    let mut copies: Vec<D> = data.iter().filter(|d| keep(d)).cloned().collect();
                    if !copies.is_empty() {
                        let kept_cap = cap.delayed(&time, 1);
                        kept_out.activate().session(&kept_cap).give_container(&mut copies);
                    }
                    let through_cap = cap.delayed(&time, 0);
                    through_out.activate().session(&through_cap).give_container(data);
                });
            }
        });
        (through, kept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use timely::dataflow::operators::capture::Extract;
    use timely::dataflow::operators::{Capture, ToStream};

    #[test]
    fn every_record_passes_and_the_kept_ones_are_copied_beside() {
        let (through, kept) = timely::example(|scope| {
            let (through, kept) = (0..30u32).to_stream(scope).tap("Tap", |x| x % 3 == 0);
            (through.capture(), kept.capture())
        });
        let flatten = |batches: Vec<(u64, Vec<u32>)>| {
            let mut all: Vec<u32> = batches.into_iter().flat_map(|(_, d)| d).collect();
            all.sort_unstable();
            all
        };
        assert_eq!(flatten(through.extract()), (0..30).collect::<Vec<_>>());
        assert_eq!(
            flatten(kept.extract()),
            (0..30).filter(|x| x % 3 == 0).collect::<Vec<_>>()
        );
    }
}
