//! The spatial index of listening stores: an R-tree of their locations
//! (for "the store is inside the alert's reach") and one of the boxes
//! around their areas of interest (for "the alert is inside the store's
//! area"). A query returns candidates; the delivery rule decides.

use rstar::primitives::{GeomWithData, Rectangle};
use rstar::{RTree, AABB};

use crate::domain::place::{Area, Place};

type StorePoint = GeomWithData<[f64; 2], i64>;
type StoreArea = GeomWithData<Rectangle<[f64; 2]>, i64>;

#[derive(Default)]
pub struct SpatialIndex {
    points: RTree<StorePoint>,
    areas: RTree<StoreArea>,
}

impl SpatialIndex {
    pub fn insert(&mut self, store_id: i64, interest: Area) {
        self.points.insert(point(store_id, interest.center));
        for area in areas(store_id, interest) {
            self.areas.insert(area);
        }
    }

    pub fn remove(&mut self, store_id: i64, interest: Area) {
        self.points.remove(&point(store_id, interest.center));
        for area in areas(store_id, interest) {
            self.areas.remove(&area);
        }
    }

    /// Every store that may receive an alert with this reach (a superset:
    /// the boxes are conservative), sorted and without repeats.
    pub fn candidates(&self, reach: Area) -> Vec<i64> {
        let mut stores: Vec<i64> = Vec::new();
        for (low, high) in reach.bounding_boxes() {
            let envelope = AABB::from_corners(low, high);
            stores.extend(self.points.locate_in_envelope(&envelope).map(|p| p.data));
        }
        let at = [reach.center.lon(), reach.center.lat()];
        stores.extend(
            self.areas
                .locate_in_envelope_intersecting(&AABB::from_point(at))
                .map(|a| a.data),
        );
        stores.sort_unstable();
        stores.dedup();
        stores
    }
}

fn point(store_id: i64, place: Place) -> StorePoint {
    GeomWithData::new([place.lon(), place.lat()], store_id)
}

fn areas(store_id: i64, interest: Area) -> impl Iterator<Item = StoreArea> {
    interest
        .bounding_boxes()
        .into_iter()
        .map(move |(low, high)| GeomWithData::new(Rectangle::from_corners(low, high), store_id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::delivery::{receives, Event, EventKind, Listener};
    use crate::domain::place::RadiusKm;
    use std::sync::Arc;

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> f64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }
        fn area(&mut self, center: (f64, f64), spread: f64) -> Area {
            let lat = (center.0 + (self.next() - 0.5) * spread).clamp(-90.0, 90.0);
            let lon =
                (center.1 + (self.next() - 0.5) * spread * 2.0 + 540.0).rem_euclid(360.0) - 180.0;
            Area {
                center: Place::from_stored(lat, lon),
                radius: RadiusKm::from_stored(0.5 + self.next() * self.next() * 499.5),
            }
        }
    }

    /// The index with the delivery rule picks exactly the stores a scan of
    /// every store does, around cities, the antimeridian and a pole.
    #[test]
    fn index_recipients_equal_a_brute_force_scan() {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        for center in [(40.7, -74.0), (0.0, 179.8), (88.5, 10.0), (-33.9, 151.2)] {
            let stores: Vec<Listener> = (0..400)
                .map(|i| Listener {
                    store_id: i,
                    interest: rng.area(center, 8.0),
                })
                .collect();
            let mut index = SpatialIndex::default();
            for store in &stores {
                index.insert(store.store_id, store.interest);
            }
            for _ in 0..200 {
                let event = Event {
                    seq: 1,
                    kind: EventKind::Alert,
                    alert_id: 1,
                    author: -1,
                    reach: rng.area(center, 8.0),
                    previous_reach: None,
                    occurred_at: 0,
                    body: Arc::from("{}"),
                };
                let scan: Vec<i64> = stores
                    .iter()
                    .filter(|s| receives(&event, s).is_some())
                    .map(|s| s.store_id)
                    .collect();
                let indexed: Vec<i64> = index
                    .candidates(event.reach)
                    .into_iter()
                    .filter(|id| receives(&event, &stores[*id as usize]).is_some())
                    .collect();
                assert_eq!(indexed, scan);
            }
        }
    }

    #[test]
    fn removed_stores_are_no_longer_candidates() {
        let area = Area {
            center: Place::from_stored(40.7, -74.0),
            radius: RadiusKm::from_stored(10.0),
        };
        let mut index = SpatialIndex::default();
        index.insert(1, area);
        index.insert(2, area);
        assert_eq!(index.candidates(area), vec![1, 2]);
        index.remove(1, area);
        assert_eq!(index.candidates(area), vec![2]);
        index.remove(2, area);
        assert!(index.candidates(area).is_empty());
    }

    mod properties {
        use super::*;
        use crate::domain::arbitrary;
        use crate::domain::delivery::{delivery, Delivery};
        use proptest::prelude::*;

        /// Where a case is centred: anywhere, near a pole, or on the
        /// antimeridian.
        fn center() -> impl Strategy<Value = (f64, f64)> {
            prop_oneof![
                (-90.0..=90.0, -180.0..=180.0),
                (prop_oneof![84.0..=90.0, -90.0..=-84.0], -180.0..=180.0),
                (-80.0..=80.0, prop_oneof![175.0..=180.0, -180.0..=-175.0]),
            ]
        }

        /// An area within a few degrees of `center` (wrapped, clamped), of
        /// any radius, often the smallest or the largest.
        fn area_near((lat, lon): (f64, f64)) -> impl Strategy<Value = Area> {
            (
                -6.0..=6.0f64,
                -12.0..=12.0f64,
                prop_oneof![Just(MIN_KM), Just(MAX_KM), MIN_KM..=50.0, MIN_KM..=MAX_KM],
            )
                .prop_map(move |(dlat, dlon, km)| Area {
                    center: Place::from_stored(
                        (lat + dlat).clamp(-90.0, 90.0),
                        (lon + dlon + 540.0).rem_euclid(360.0) - 180.0,
                    ),
                    radius: RadiusKm::from_stored(km),
                })
        }

        const MIN_KM: f64 = crate::domain::place::MIN_RADIUS_KM;
        const MAX_KM: f64 = crate::domain::place::MAX_RADIUS_KM;

        #[derive(Debug)]
        struct Case {
            /// Where each store listens now (its id is its position).
            stores: Vec<Area>,
            /// Where some of them listened first (re-indexed since).
            moved_from: Vec<Option<Area>>,
            /// Alerts: reach, where an update moved it from, author.
            events: Vec<(Area, Option<Area>, i64)>,
        }

        fn case() -> impl Strategy<Value = Case> {
            center().prop_flat_map(|at| {
                (
                    proptest::collection::vec(
                        (
                            area_near(at),
                            proptest::option::weighted(0.2, area_near(at)),
                        ),
                        1..48,
                    ),
                    proptest::collection::vec(
                        (
                            area_near(at),
                            proptest::option::weighted(0.3, area_near(at)),
                            -1i64..48,
                        ),
                        1..16,
                    ),
                )
                    .prop_map(|(stores, events)| Case {
                        moved_from: stores.iter().map(|(_, from)| *from).collect(),
                        stores: stores.into_iter().map(|(area, _)| area).collect(),
                        events,
                    })
            })
        }

        fn event(reach: Area, previous_reach: Option<Area>, author: i64) -> Event {
            Event {
                seq: 1,
                kind: if previous_reach.is_some() {
                    EventKind::Update
                } else {
                    EventKind::Alert
                },
                alert_id: 1,
                author,
                reach,
                previous_reach,
                occurred_at: 0,
                body: Arc::from("{}"),
            }
        }

        fn listener(id: usize, interest: Area) -> Listener {
            Listener {
                store_id: id as i64,
                interest,
            }
        }

        proptest! {
            #![proptest_config(arbitrary::config())]

            /// For arbitrary stores and alerts (and updates that move
            /// alerts), the stores the index finds, with the author as the
            /// hub adds it, get exactly the deliveries a scan of every
            /// store by the rule gives: near the poles and the antimeridian
            /// too, and after stores moved.
            #[test]
            fn the_index_finds_exactly_the_stores_the_rule_picks(case in case()) {
                let mut index = SpatialIndex::default();
                for (id, (area, from)) in case.stores.iter().zip(&case.moved_from).enumerate() {
                    match from {
                        Some(from) => {
                            index.insert(id as i64, *from);
                            index.remove(id as i64, *from);
                            index.insert(id as i64, *area);
                        }
                        None => index.insert(id as i64, *area),
                    }
                }
                for (reach, previous, author) in &case.events {
                    let event = event(*reach, *previous, *author);
                    let scan: Vec<(i64, Delivery)> = case
                        .stores
                        .iter()
                        .enumerate()
                        .filter_map(|(id, area)| {
                            delivery(&event, &listener(id, *area), i64::MIN).map(|d| (id as i64, d))
                        })
                        .collect();
                    let mut candidates = index.candidates(event.reach);
                    if let Some(before) = event.previous_reach {
                        candidates.extend(index.candidates(before));
                    }
                    if (0..case.stores.len() as i64).contains(&event.author) {
                        candidates.push(event.author);
                    }
                    candidates.sort_unstable();
                    candidates.dedup();
                    let indexed: Vec<(i64, Delivery)> = candidates
                        .into_iter()
                        .filter_map(|id| {
                            let store = listener(id as usize, case.stores[id as usize]);
                            delivery(&event, &store, i64::MIN).map(|d| (id, d))
                        })
                        .collect();
                    prop_assert_eq!(indexed, scan);
                }
            }
        }
    }
}
