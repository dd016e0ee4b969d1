//! Ranking metrics for labelled detector scores: ROC-AUC and PR-AUC (average precision), both
//! tie-aware, so a detector that gives many rows the same score gets no credit for the order
//! they happen to be in.

/// ROC-AUC: the probability that a random positive scores above a random negative, ties
/// counting one half (the Mann–Whitney U statistic from average ranks). `None` without both a
/// positive and a negative.
pub fn roc_auc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    let order = sorted_by_score(scores, labels)?;
    let positives = labels.iter().filter(|&&l| l).count() as f64;
    let negatives = labels.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return None;
    }
    // Sum of the positives' ranks (1-based, ascending), each tie group at its average rank.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j < order.len() && scores[order[j]] == scores[order[i]] {
            j += 1;
        }
        let average_rank = (i + 1 + j) as f64 / 2.0;
        let pos = order[i..j].iter().filter(|&&k| labels[k]).count() as f64;
        rank_sum += pos * average_rank;
        i = j;
    }
    Some((rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives))
}

/// PR-AUC as average precision: Σ over score thresholds (highest first) of the recall gained
/// times the precision there, a tie group entering as a whole (scikit-learn's
/// `average_precision_score`). `None` without a positive.
pub fn average_precision(scores: &[f64], labels: &[bool]) -> Option<f64> {
    let mut order = sorted_by_score(scores, labels)?;
    order.reverse();
    let positives = labels.iter().filter(|&&l| l).count() as f64;
    if positives == 0.0 {
        return None;
    }
    let (mut tp, mut seen, mut ap) = (0.0, 0.0, 0.0);
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        let mut gained = 0.0;
        while j < order.len() && scores[order[j]] == scores[order[i]] {
            if labels[order[j]] {
                gained += 1.0;
            }
            j += 1;
        }
        tp += gained;
        seen += (j - i) as f64;
        ap += gained / positives * (tp / seen);
        i = j;
    }
    Some(ap)
}

/// Row numbers sorted by ascending score (NaN first: it ranks as least suspicious), or `None`
/// when the lengths differ.
fn sorted_by_score(scores: &[f64], labels: &[bool]) -> Option<Vec<usize>> {
    if scores.len() != labels.len() {
        return None;
    }
    let key = |i: usize| {
        let s = scores[i];
        if s.is_nan() {
            f64::NEG_INFINITY
        } else {
            s
        }
    };
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| key(a).total_cmp(&key(b)));
    Some(order)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_perfect_ranking_scores_one_and_a_reversed_one_zero() {
        let labels = [false, false, true, true];
        assert_eq!(roc_auc(&[0.1, 0.2, 0.8, 0.9], &labels), Some(1.0));
        assert_eq!(roc_auc(&[0.9, 0.8, 0.2, 0.1], &labels), Some(0.0));
        assert_eq!(average_precision(&[0.1, 0.2, 0.8, 0.9], &labels), Some(1.0));
    }

    #[test]
    fn ties_count_one_half_and_give_no_credit_for_order() {
        // Every score equal: AUC exactly 0.5, AP the positive share.
        let labels = [true, false, false, true, false];
        assert_eq!(roc_auc(&[1.0; 5], &labels), Some(0.5));
        assert_eq!(average_precision(&[1.0; 5], &labels), Some(0.4));
        // One positive tied with one negative at the top, another below both negatives:
        // pairs (p1>n1 ½, p1>n2 1, p2<n1 0, p2<n2 0) → 1.5/4.
        let s = [0.9, 0.9, 0.5, 0.1];
        let l = [true, false, false, true];
        assert_eq!(roc_auc(&s, &l), Some(0.375));
    }

    #[test]
    fn average_precision_matches_a_hand_worked_example() {
        // Ranked: P, N, P, N → precision 1 at recall ½, 2/3 at recall 1 → AP = ½ + ⅓.
        let s = [0.9, 0.8, 0.7, 0.6];
        let l = [true, false, true, false];
        let ap = average_precision(&s, &l).unwrap();
        assert!((ap - (0.5 + 1.0 / 3.0)).abs() < 1e-12);
    }

    #[test]
    fn one_class_only_or_mismatched_lengths_have_no_auc() {
        assert_eq!(roc_auc(&[0.1, 0.2], &[true, true]), None);
        assert_eq!(average_precision(&[0.1, 0.2], &[false, false]), None);
        assert_eq!(roc_auc(&[0.1], &[true, false]), None);
    }
}
